-- The three positive process measures, per quarter and site ('ALL': all sites):
--   TF-COURSE-ADEQUATE   completed TF courses (by the quarter and site of their
--                        last session) that reached tf_min_sessions;
--   FIRST-LINE-ADEQUATE  completed first-line trials (by the quarter of their
--                        end and the site of their first fill) that were adequate;
--   BZD-ACTIVE-SHARE     active cohort patients (any prescription or session
--                        at the site in the quarter) with any benzodiazepine
--                        covered day in the quarter.
with courses as (
    select to_char(last_session, 'YYYY-"Q"Q') as period, last_site_id as site_id,
           (n_sessions >= %(tf_min_sessions)s::integer)::integer as ok,
           patient_id || '|' || course_no as unit
    from core.tf_courses
    where not is_ongoing
),

trials as (
    select to_char(trial_end, 'YYYY-"Q"Q') as period, first_site_id as site_id,
           (acute_covered_days >= %(acute_days)s::integer and has_effective_dose)::integer as ok,
           patient_id || '|' || ingredient || '|' || trial_no as unit
    from core.med_trials
    where first_line and not is_ongoing
),

units as (
    select 'TF-COURSE-ADEQUATE' as measure_id, period, site_id, unit, ok from courses
    union all
    select 'FIRST-LINE-ADEQUATE', period, site_id, unit, ok from trials
),

counted as (
    select measure_id, period, site_id,
           count(distinct unit)::integer as denominator,
           count(distinct unit) filter (where ok = 1)::integer as numerator
    from units group by measure_id, period, site_id
    union all
    select measure_id, period, 'ALL',
           count(distinct unit)::integer,
           count(distinct unit) filter (where ok = 1)::integer
    from units group by measure_id, period
    -- active patients: core.patient_sites has one row per patient, site and
    -- quarter, and marks each patient's first visited site of the quarter;
    -- its count table holds how many patients each combination has
    union all
    select 'BZD-ACTIVE-SHARE', to_char(period, 'YYYY-"Q"Q'), site_id,
           sum(patients)::integer, coalesce(sum(patients) filter (where bzd_covered), 0)::integer
    from core.patient_sites_counts where by_visit
    group by period, site_id
    union all
    select 'BZD-ACTIVE-SHARE', to_char(period, 'YYYY-"Q"Q'), 'ALL',
           sum(patients)::integer, coalesce(sum(patients) filter (where bzd_covered), 0)::integer
    from core.patient_sites_counts where first_visit_in_period
    group by period
)

select
    %(run_id)s as run_id,
    c.measure_id,
    'process' as kind,
    c.period,
    c.site_id,
    '' as prescriber_id,
    c.denominator,
    c.numerator,
    round(c.numerator::numeric / c.denominator, 6) as rate,
    round(audit.wilson_low(c.numerator, c.denominator), 6) as ci_low,
    round(audit.wilson_high(c.numerator, c.denominator), 6) as ci_high,
    round(t.numerator::numeric / t.denominator, 6) as all_sites_rate,
    false as outlier
from counted as c
inner join counted as t
    on t.measure_id = c.measure_id and t.period = c.period and t.site_id = 'ALL'
where c.denominator > 0
