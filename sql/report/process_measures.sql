-- The four positive process measures, per quarter and site ('ALL': all sites):
--   TF-COURSE-ADEQUATE   completed TF courses (by the quarter and site of their
--                        last session) that were adequate (their minimum, or a
--                        response);
--   FIRST-LINE-ADEQUATE  completed first-line trials (by the quarter of their
--                        end and the site of their first fill) that were adequate;
--   BZD-ACTIVE-SHARE     active cohort patients (any prescription or session
--                        at the site in the quarter) with a benzodiazepine
--                        covered day in the quarter of a counted episode (not
--                        excluded, not incidental);
--   AMM-CONTINUATION     antidepressant episodes (by the quarter of their start
--                        and the site of their first fill) with acute_days
--                        covered days in their first acute_window_days that
--                        went on to amm_continuation_days in their first
--                        amm_continuation_window_days; episodes younger than
--                        that window at as_of are left out.
with courses as (
    select to_char(last_session, 'YYYY-"Q"Q') as period, last_site_id as site_id,
           is_adequate::integer as ok,
           patient_id || '|' || course_no as unit
    from core.tf_courses
    where not is_ongoing
),

trials as (
    select to_char(trial_end, 'YYYY-"Q"Q') as period, first_site_id as site_id,
           (adequacy_date is not null)::integer as ok,
           patient_id || '|' || ingredient || '|' || trial_no as unit
    from core.med_trials
    where first_line and not is_ongoing
),

episodes as (
    select to_char(episode_start, 'YYYY-"Q"Q') as period, first_site_id as site_id,
           (continuation_covered_days >= %(amm_continuation_days)s::integer)::integer as ok,
           patient_id || '|' || episode_no as unit
    from core.ad_episodes
    where acute_covered_days >= %(acute_days)s::integer
      and episode_start + (%(amm_continuation_window_days)s::integer - 1) <= %(as_of)s::date
),

units as (
    select 'TF-COURSE-ADEQUATE' as measure_id, period, site_id, unit, ok from courses
    union all
    select 'FIRST-LINE-ADEQUATE', period, site_id, unit, ok from trials
    union all
    select 'AMM-CONTINUATION', period, site_id, unit, ok from episodes
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
