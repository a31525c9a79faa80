-- Nightmare findings of cohort patients: NIGHTMARES clinical events and
-- nightmare ICD-10-CM diagnoses (F51.5, matched exactly, dot optional), dated
-- on or before as_of. Read by PRZ-NIGHTMARE-GAP, PRZ-DOSE's exclusion and the
-- care pathway.
select e.patient_id, e.event_date as found_on, 'clinical_events:' || e.event_id as source
from core.clinical_events as e
inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
where e.is_current and e.event_type = 'NIGHTMARES' and e.event_date <= %(as_of)s::date
union all
select d.patient_id, d.diagnosed_on, 'diagnoses:' || d.diagnosis_id
from core.diagnoses as d
inner join core.ptsd_cohort as c on c.patient_id = d.patient_id
where d.is_current
  and d.code_system = 'ICD10CM'
  and audit.icd(d.code) = any(%(nightmare_icd10cm)s::text[])
  and d.diagnosed_on <= %(as_of)s::date
