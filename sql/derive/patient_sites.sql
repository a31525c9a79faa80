-- Where and when each cohort patient was seen, for the measures'
-- denominators: one row per patient, site and quarter (period: its first
-- day), from prescriptions and therapy sessions at their site and any
-- diagnosis of the patient at the patient's home site, dated on or before
-- as_of.
--   by_visit              a prescription or session there (not only a diagnosis);
--   first_in_period       the patient's first row of the quarter (counts the
--                         patient once for all sites);
--   first_visit_in_period the same among by_visit rows;
--   bzd_covered           a benzodiazepine covered day in the quarter.
with seen as (
    select rx.patient_id, rx.site_id, date_trunc('quarter', rx.filled_on)::date as period,
           true as by_visit
    from core.prescriptions as rx
    inner join core.ptsd_cohort as c on c.patient_id = rx.patient_id
    where rx.is_current and rx.filled_on <= %(as_of)s::date
    union all
    select s.patient_id, s.site_id, date_trunc('quarter', s.session_date)::date, true
    from core.therapy_sessions as s
    inner join core.ptsd_cohort as c on c.patient_id = s.patient_id
    where s.is_current and s.session_date <= %(as_of)s::date
    union all
    select d.patient_id, c.home_site_id, date_trunc('quarter', d.diagnosed_on)::date, false
    from core.diagnoses as d
    inner join core.ptsd_cohort as c on c.patient_id = d.patient_id
    where d.is_current and d.diagnosed_on <= %(as_of)s::date
),

sites as (
    select patient_id, site_id, period, bool_or(by_visit) as by_visit
    from seen
    group by patient_id, site_id, period
)

select
    s.patient_id,
    s.site_id,
    s.period,
    s.by_visit,
    row_number() over (partition by s.patient_id, s.period order by s.site_id) = 1
        as first_in_period,
    s.by_visit and row_number() over (
        partition by s.patient_id, s.period order by s.by_visit desc, s.site_id) = 1
        as first_visit_in_period,
    exists (
        select 1 from core.bzd_fills as b
        where b.patient_id = s.patient_id
          and b.cover_start <= least((s.period + interval '3 months' - interval '1 day')::date,
                                     %(as_of)s::date)
          and b.cover_end >= s.period
    ) as bzd_covered
from sites as s
