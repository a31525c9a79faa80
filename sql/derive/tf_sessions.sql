-- Trauma-focused sessions of cohort patients, one row per distinct date.
select
    s.patient_id,
    s.session_date,
    array_agg(s.session_id order by s.session_id) as session_ids,
    string_agg(distinct s.modality, '/' order by s.modality) as modalities,
    min(s.site_id) as site_id,
    min(s.clinician_id) as clinician_id
from core.therapy_sessions as s
inner join core.ptsd_cohort as c on c.patient_id = s.patient_id
where s.is_current
  and s.session_date <= %(as_of)s
  and s.modality = any(%(tf_modalities)s::text[])
group by s.patient_id, s.session_date
