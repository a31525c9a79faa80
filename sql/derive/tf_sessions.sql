-- Trauma-focused sessions of cohort patients, counted as rows (distinct
-- session_id), at most tf_max_per_day per patient and date: the smallest
-- session_ids in byte order (massed protocols give two a day; more is taken as
-- duplication).
with ranked as (
    select
        s.patient_id,
        s.session_id,
        s.session_date,
        s.modality,
        s.site_id,
        row_number() over (
            partition by s.patient_id, s.session_date order by s.session_id
        ) as nth_of_day
    from core.therapy_sessions as s
    inner join core.ptsd_cohort as c on c.patient_id = s.patient_id
    where s.is_current
      and s.session_date <= %(as_of)s
      and s.modality = any(%(tf_modalities)s::text[])
)

select patient_id, session_id, session_date, modality, site_id
from ranked
where nth_of_day <= %(tf_max_per_day)s::integer
