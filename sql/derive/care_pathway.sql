-- The care pathway: one row per cohort patient, where they stand on the
-- guideline's algorithm at as_of, and the next step it recommends. Runs after
-- the rules: it reads this run's cases.
with tf as (
    select
        c.patient_id,
        count(s.session_date)::integer as tf_sessions
    from core.ptsd_cohort as c
    left join core.tf_sessions as s on s.patient_id = c.patient_id
    group by c.patient_id
),

courses as (
    select
        patient_id,
        max(n_sessions) as best_course_sessions,
        bool_or(n_sessions >= %(tf_min_sessions)s::integer) as course_reached_min,
        max(n_sessions) filter (where is_ongoing) as ongoing_course_sessions
    from core.tf_courses
    group by patient_id
),

first_line as (
    select distinct on (t.patient_id)
        t.patient_id,
        t.ingredient,
        t.trial_start,
        t.is_ongoing,
        t.acute_covered_days,
        t.has_effective_dose,
        t.has_known_dose,
        t.acute_end,
        t.acute_covered_days >= %(acute_days)s::integer and t.has_effective_dose as is_adequate
    from core.med_trials as t
    where t.first_line
    order by
        t.patient_id,
        (t.acute_covered_days >= %(acute_days)s::integer and t.has_effective_dose) desc,
        t.is_ongoing desc,
        t.trial_start desc
),

nightmares as (
    select patient_id, min(found_on) as found_on
    from (
        select e.patient_id, e.event_date as found_on
        from core.clinical_events as e
        where e.is_current and e.event_type = 'NIGHTMARES' and e.event_date <= %(as_of)s::date
        union all
        select d.patient_id, d.diagnosed_on
        from core.diagnoses as d
        where d.is_current
          and d.code_system = 'ICD10CM'
          and upper(replace(d.code, '.', '')) = any(%(nightmare_icd10cm)s::text[])
          and d.diagnosed_on <= %(as_of)s::date
    ) as n
    group by patient_id
),

meds as (
    select
        patient_id,
        bool_or(ingredient = 'prazosin') as prazosin_tried,
        bool_or(drug_class = 'SNRI') as had_venlafaxine,
        bool_or(drug_class = 'BZD' and is_ongoing) as benzodiazepine_active
    from core.med_trials
    group by patient_id
),

remission as (
    select patient_id, max(on_date) as last_remission
    from (
        select e.patient_id, e.event_date as on_date
        from core.clinical_events as e
        where e.is_current and e.event_type = 'REMISSION' and e.event_date <= %(as_of)s::date
        union all
        select a.patient_id, a.assessed_on
        from core.assessments as a
        where a.is_current
          and a.instrument = 'PCL5'
          and a.score < %(remission_pcl5_below)s::integer
          and a.assessed_on <= %(as_of)s::date
    ) as r
    group by patient_id
),

flags as (
    select
        patient_id,
        bool_or(rule_id = 'MDMA-OFF-TRIAL') as mdma_off_trial,
        bool_or(rule_id = 'VEN-SEQUENCE') as ven_without_ssri
    from audit.run_cases
    where run_id = %(run_id)s and status = 'open'
    group by patient_id
),

joined as (
    select
        c.patient_id,
        c.home_site_id,
        c.index_date,
        tf.tf_sessions,
        coalesce(co.best_course_sessions, 0) as best_course_sessions,
        coalesce(co.course_reached_min, false) as tf_course_reached_min,
        co.ongoing_course_sessions,
        fl.ingredient as first_line_ingredient,
        fl.trial_start as first_line_start,
        fl.acute_covered_days as first_line_acute_covered_days,
        coalesce(fl.is_adequate, false) as first_line_adequate,
        fl.is_ongoing as first_line_ongoing,
        fl.has_effective_dose as first_line_effective_dose,
        fl.has_known_dose as first_line_known_dose,
        nm.found_on as nightmares_on,
        coalesce(m.prazosin_tried, false) as prazosin_tried,
        case when coalesce(m.had_venlafaxine, false)
             then not coalesce(f.ven_without_ssri, false) end as venlafaxine_after_ssri,
        coalesce(m.benzodiazepine_active, false) as benzodiazepine_active,
        trd.event_date as treatment_resistant_on,
        mdma.event_date as first_mdma_on,
        coalesce(f.mdma_off_trial, false) as mdma_off_trial,
        rem.last_remission
    from core.ptsd_cohort as c
    inner join tf on tf.patient_id = c.patient_id
    left join courses as co on co.patient_id = c.patient_id
    left join first_line as fl on fl.patient_id = c.patient_id
    left join meds as m on m.patient_id = c.patient_id
    left join flags as f on f.patient_id = c.patient_id
    left join remission as rem on rem.patient_id = c.patient_id
    left join nightmares as nm on nm.patient_id = c.patient_id
    left join core.readiness as trd
        on trd.patient_id = c.patient_id and trd.event_kind = 'TREATMENT_RESISTANT'
    left join core.readiness as mdma
        on mdma.patient_id = c.patient_id and mdma.event_kind = 'MDMA'
)

select
    j.*,
    case
        when j.mdma_off_trial
            then 'stop MDMA outside an approved clinical trial'
        when j.benzodiazepine_active
            then 'taper the benzodiazepine'
        when not j.tf_course_reached_min and j.ongoing_course_sessions is not null
            then format('complete the trauma-focused course (%%s of %%s sessions so far)',
                        j.ongoing_course_sessions, %(tf_min_sessions)s::integer)
        when not j.tf_course_reached_min
            then 'offer trauma-focused psychotherapy (PE, CPT or EMDR)'
        when not j.first_line_adequate and j.first_line_ongoing
             and j.first_line_known_dose and not j.first_line_effective_dose
            then format('raise %%s to an effective dose', j.first_line_ingredient)
        when not j.first_line_adequate and j.first_line_ongoing
            then format('continue %%s to an adequate trial', j.first_line_ingredient)
        when not j.first_line_adequate and j.first_line_ingredient is not null
            then 'restart a first-line antidepressant (sertraline, paroxetine or venlafaxine) at an effective dose'
        when not j.first_line_adequate
            then 'start sertraline or paroxetine'
        when j.nightmares_on is not null and not j.prazosin_tried
            then 'consider prazosin for nightmares'
        when j.last_remission is not null
            then 'continue treatment for 9-12 months after remission'
        else 'refer to a specialised PTSD programme'
    end as next_step
from joined as j
