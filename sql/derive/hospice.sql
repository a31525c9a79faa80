-- Hospice or palliative care: the first HOSPICE clinical event or hospice
-- ICD-10-CM diagnosis (Z51.5, matched exactly, dot optional) of each cohort
-- patient, dated on or before as_of. A medication rule's case dated on or
-- after it is excluded.
select distinct on (h.patient_id) h.patient_id, h.hospice_on, h.source
from (
    select e.patient_id, e.event_date as hospice_on, 'clinical_events:' || e.event_id as source
    from core.clinical_events as e
    inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
    where e.is_current and e.event_type = 'HOSPICE' and e.event_date <= %(as_of)s::date
    union all
    select d.patient_id, d.diagnosed_on, 'diagnoses:' || d.diagnosis_id
    from core.diagnoses as d
    inner join core.ptsd_cohort as c on c.patient_id = d.patient_id
    where d.is_current
      and d.code_system = 'ICD10CM'
      and audit.icd(d.code) = any(%(hospice_icd10cm)s::text[])
      and d.diagnosed_on <= %(as_of)s::date
) as h
order by h.patient_id, h.hospice_on, h.source
