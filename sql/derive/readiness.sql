-- For the two "before the event" tests (TRD-PREMATURE, MDMA-PREMATURE): the
-- patient's first treatment-resistant label and first MDMA exposure, and what
-- treatment came strictly before each. TF sessions are distinct TF dates from
-- any course; a first-line trial counts as adequate only when its acute window
-- ended before the event (trial_start + acute_window_days - 1 < event date).
-- is_ready: both held; gaps: what was missing, as the rules' summaries say it.
with events as (
    select
        e.patient_id,
        'TREATMENT_RESISTANT' as event_kind,
        min(e.event_date) as event_date,
        (array_agg(e.event_id order by e.event_date, e.event_id))[1] as source_id,
        'clinical_events' as source_table,
        null::text as site_id,
        null::text as prescriber_id
    from core.clinical_events as e
    inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
    where e.is_current
      and e.event_type = 'TREATMENT_RESISTANT'
      and e.event_date <= %(as_of)s
    group by e.patient_id

    union all

    select
        f.patient_id,
        'MDMA' as event_kind,
        min(f.filled_on) as event_date,
        (array_agg(f.rx_id order by f.filled_on, f.rx_id))[1] as source_id,
        'prescriptions' as source_table,
        (array_agg(f.site_id order by f.filled_on, f.rx_id))[1] as site_id,
        (array_agg(f.prescriber_id order by f.filled_on, f.rx_id))[1] as prescriber_id
    from core.drug_fills as f
    where f.drug_class = 'MDMA'
    group by f.patient_id
)

select
    ev.*,
    coalesce(tf.n_before, 0)::integer as tf_sessions_before,
    coalesce(adequate.n, 0) > 0 as adequate_first_line_before,
    coalesce(tf.n_before, 0) >= %(tf_min_sessions)s::integer and coalesce(adequate.n, 0) > 0
        as is_ready,
    audit.readiness_gaps(
        coalesce(tf.n_before, 0)::integer, %(tf_min_sessions)s::integer,
        coalesce(adequate.n, 0) > 0, best.ingredient, best.trial_start,
        best.acute_covered_days, best.has_effective_dose, best.acute_end, ev.event_date,
        %(acute_days)s::integer
    ) as gaps,
    best.ingredient as best_ingredient,
    best.trial_start as best_trial_start,
    best.acute_covered_days as best_acute_covered_days,
    best.has_effective_dose as best_has_effective_dose,
    best.acute_end as best_acute_end
from events as ev
left join lateral (
    select count(*) as n_before
    from core.tf_sessions as s
    where s.patient_id = ev.patient_id and s.session_date < ev.event_date
) as tf on true
left join lateral (
    select count(*) as n
    from core.med_trials as t
    where t.patient_id = ev.patient_id
      and t.first_line
      and t.acute_end < ev.event_date
      and t.acute_covered_days >= %(acute_days)s::integer
      and t.has_effective_dose
) as adequate on true
left join lateral (
    select t.*
    from core.med_trials as t
    where t.patient_id = ev.patient_id
      and t.first_line
      and t.trial_start < ev.event_date
    order by
        (t.acute_end < ev.event_date) desc,
        t.acute_covered_days desc,
        t.has_effective_dose desc,
        t.trial_start
    limit 1
) as best on true
