-- Where and when each cohort patient was seen, for the measures'
-- denominators: one row per patient, site and quarter (period: its first
-- day), from prescriptions and therapy sessions at their site and any
-- diagnosis of the patient at the patient's home site, dated on or before
-- as_of.
--   by_visit              a prescription or session there (not only a diagnosis);
--   first_in_period       the patient's first row of the quarter (counts the
--                         patient once for all sites);
--   first_visit_in_period the same among by_visit rows;
--   bzd_covered           a benzodiazepine covered day in the quarter, of an
--                         episode counted by BZD-PTSD (built after the rules).
-- (Dates go to quarters through timestamp, not timestamptz: no time zone
-- arithmetic per row.)
-- quarters holding a benzodiazepine covered day (on or before as_of) of a
-- counted episode: one whose BZD-PTSD case of this run is open (not
-- excluded, not incidental)
with bzd_quarters as (
    select distinct b.patient_id, q::date as period
    from core.bzd_fills as b
    inner join core.bzd_episodes as e
        on e.patient_id = b.patient_id and e.episode_no = b.episode_no
    inner join audit.run_cases as rc
        on rc.run_id = %(run_id)s
       and rc.case_id = audit.case_id('BZD-PTSD', e.patient_id, audit.iso(e.episode_start))
       and rc.status = 'open'
    cross join lateral generate_series(
        date_trunc('quarter', b.cover_start::timestamp),
        date_trunc('quarter', least(b.cover_end, %(as_of)s::date)::timestamp),
        interval '3 months') as q
    where b.cover_start <= %(as_of)s::date
),

-- per patient (a lateral over the cohort): the quarters of each site, and the
-- patient's first site of each quarter, without a sort of every row
ordered as (
    select c.patient_id, o.site_id, o.period, o.by_visit, o.first_in_period, o.visit_before
    from core.ptsd_cohort as c
    cross join lateral (
        select
            seen.site_id,
            seen.period,
            bool_or(seen.by_visit) as by_visit,
            row_number() over w = 1 as first_in_period,
            coalesce(bool_or(bool_or(seen.by_visit))
                         over (w rows between unbounded preceding and 1 preceding),
                     false) as visit_before
        from (
            select rx.site_id, date_trunc('quarter', rx.filled_on::timestamp)::date as period,
                   true as by_visit
            from core.prescriptions as rx
            where rx.patient_id = c.patient_id and rx.is_current
              and rx.filled_on <= %(as_of)s::date
            union all
            select s.site_id, date_trunc('quarter', s.session_date::timestamp)::date, true
            from core.therapy_sessions as s
            where s.patient_id = c.patient_id and s.is_current
              and s.session_date <= %(as_of)s::date
            union all
            select c.home_site_id, date_trunc('quarter', d.diagnosed_on::timestamp)::date, false
            from core.diagnoses as d
            where d.patient_id = c.patient_id and d.is_current
              and d.diagnosed_on <= %(as_of)s::date
        ) as seen
        group by seen.site_id, seen.period
        window w as (partition by seen.period order by seen.site_id)
    ) as o
)

select
    o.patient_id,
    o.site_id,
    o.period,
    o.by_visit,
    o.first_in_period,
    o.by_visit and not o.visit_before as first_visit_in_period,
    bq.patient_id is not null as bzd_covered
from ordered as o
left join bzd_quarters as bq on bq.patient_id = o.patient_id and bq.period = o.period
