-- The care pathway: one row per cohort patient, where they stand on the
-- guideline's algorithm at as_of, and the next step: the first of the
-- ordered steps of rules.md ("Care pathway") that applies. Runs after the
-- rules: it reads this run's cases.
with courses as (
    select
        patient_id,
        bool_or(is_adequate) as any_adequate,
        bool_or(is_ongoing) as any_ongoing,
        (array_agg(n_sessions order by n_sessions::numeric / minimum desc, course_start desc))[1]
            as best_sessions,
        (array_agg(minimum order by n_sessions::numeric / minimum desc, course_start desc))[1]
            as best_minimum
    from core.tf_courses
    group by patient_id
),

tf as (
    select patient_id, count(*)::integer as tf_sessions
    from core.tf_sessions
    group by patient_id
),

first_line as (
    -- the first-line trial that speaks for the patient: an adequate one, else
    -- the latest ongoing one, else the latest
    select distinct on (t.patient_id)
        t.patient_id,
        t.ingredient,
        t.trial_start,
        t.is_ongoing,
        t.adequacy_date is not null as is_adequate,
        t.last_dose_mg,
        t.last_min_mg
    from core.med_trials as t
    where t.first_line
    order by t.patient_id, (t.adequacy_date is not null) desc, t.is_ongoing desc,
             t.trial_start desc
),

ongoing_first_line as (
    select distinct on (t.patient_id)
        t.patient_id, t.ingredient, t.last_dose_mg, t.last_min_mg
    from core.med_trials as t
    where t.first_line and t.is_ongoing
    order by t.patient_id, t.trial_start desc, t.ingredient
),

current_ad as (
    select distinct on (t.patient_id)
        t.patient_id, t.ingredient, t.last_dose_mg
    from core.med_trials as t
    where t.drug_class in ('SSRI', 'SNRI') and t.is_ongoing
    order by t.patient_id, t.trial_start desc, t.ingredient
),

meds as (
    select
        patient_id,
        bool_or(ingredient = 'prazosin') as prazosin_tried,
        bool_or(ingredient = 'venlafaxine') as had_venlafaxine,
        bool_or(drug_class in ('SSRI', 'SNRI') and is_ongoing) as antidepressant_ongoing
    from core.med_trials
    group by patient_id
),

ssri_no_response as (
    -- an adequate SSRI trial, completed, with no response from its start on
    select distinct t.patient_id
    from core.med_trials as t
    where t.drug_class = 'SSRI' and t.adequacy_date is not null and not t.is_ongoing
      and not exists (
          select 1 from core.responses as r
          where r.patient_id = t.patient_id and r.response_on >= t.trial_start)
),

nightmares as (
    select patient_id, min(found_on) as found_on
    from core.nightmare_findings
    group by patient_id
),

irt as (
    select distinct s.patient_id
    from core.therapy_sessions as s
    inner join core.ptsd_cohort as c on c.patient_id = s.patient_id
    where s.is_current and s.modality = 'IRT' and s.session_date <= %(as_of)s::date
),

events as (
    select
        e.patient_id,
        min(e.event_date) filter (where e.event_type = 'TREATMENT_RESISTANT') as first_trd_on,
        max(e.event_date) filter (where e.event_type = 'TREATMENT_RESISTANT') as last_trd_on,
        min(e.event_date) filter (where e.event_type = 'REFERRAL_INTENSIVE') as referral_on
    from core.clinical_events as e
    inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
    where e.is_current and e.event_date <= %(as_of)s::date
    group by e.patient_id
),

responses as (
    select patient_id, max(response_on) as last_response_on
    from core.responses
    group by patient_id
),

flags as (
    select
        patient_id,
        bool_or(rule_id = 'MDMA-OFF-TRIAL' and severity = 'critical'
                and case_date > %(as_of)s::date - 365) as recent_mdma_off_trial,
        bool_or(rule_id = 'MDMA-OFF-TRIAL' and severity = 'critical') as mdma_off_trial
    from audit.run_cases
    where run_id = %(run_id)s and status = 'open' and rule_id = 'MDMA-OFF-TRIAL'
    group by patient_id
),

bzd_open as (
    -- an ongoing benzodiazepine episode whose case is open (not excluded)
    select distinct e.patient_id
    from core.bzd_episodes as e
    inner join audit.run_cases as rc
        on rc.run_id = %(run_id)s
       and rc.case_id = audit.case_id('BZD-PTSD', e.patient_id, audit.iso(e.episode_start))
       and rc.status = 'open'
    where e.is_ongoing
),

joined as (
    select
        c.patient_id,
        c.home_site_id,
        c.index_date,
        coalesce(tf.tf_sessions, 0) as tf_sessions,
        coalesce(co.best_sessions, 0) as best_course_sessions,
        co.best_minimum as best_course_minimum,
        coalesce(co.any_adequate, false) as tf_course_adequate,
        coalesce(co.any_ongoing, false) as tf_course_ongoing,
        fl.ingredient as first_line_ingredient,
        fl.trial_start as first_line_start,
        coalesce(fl.is_adequate, false) as first_line_adequate,
        coalesce(fl.is_ongoing, false) as first_line_ongoing,
        fl.last_dose_mg as first_line_dose_mg,
        ca.ingredient as current_antidepressant,
        ca.last_dose_mg as current_dose_mg,
        nm.found_on as nightmares_on,
        coalesce(m.prazosin_tried, false) as prazosin_tried,
        irt.patient_id is not null as irt_tried,
        bo.patient_id is not null as benzodiazepine_active,
        r.last_response_on,
        ev.first_trd_on as treatment_resistant_on,
        ev.referral_on,
        mdma.event_date as first_mdma_on,
        coalesce(f.mdma_off_trial, false) as mdma_off_trial,
        h.hospice_on,
        -- inputs of the next step only
        coalesce(f.recent_mdma_off_trial, false) as recent_mdma_off_trial,
        r.last_response_on > %(as_of)s::date - 365
            and (ev.last_trd_on is null or ev.last_trd_on <= r.last_response_on) as recent_response,
        coalesce(m.antidepressant_ongoing, false) as antidepressant_ongoing,
        ofl.ingredient as ongoing_first_line,
        ofl.last_dose_mg as ongoing_first_line_dose,
        ofl.last_min_mg as ongoing_first_line_min,
        coalesce(m.had_venlafaxine, false) as had_venlafaxine,
        snr.patient_id is not null as adequate_ssri_no_response
    from core.ptsd_cohort as c
    left join tf on tf.patient_id = c.patient_id
    left join courses as co on co.patient_id = c.patient_id
    left join first_line as fl on fl.patient_id = c.patient_id
    left join ongoing_first_line as ofl on ofl.patient_id = c.patient_id
    left join current_ad as ca on ca.patient_id = c.patient_id
    left join meds as m on m.patient_id = c.patient_id
    left join ssri_no_response as snr on snr.patient_id = c.patient_id
    left join nightmares as nm on nm.patient_id = c.patient_id
    left join irt on irt.patient_id = c.patient_id
    left join events as ev on ev.patient_id = c.patient_id
    left join responses as r on r.patient_id = c.patient_id
    left join flags as f on f.patient_id = c.patient_id
    left join bzd_open as bo on bo.patient_id = c.patient_id
    left join core.hospice as h on h.patient_id = c.patient_id
    left join core.readiness as mdma
        on mdma.patient_id = c.patient_id and mdma.event_kind = 'MDMA'
)

select
    j.patient_id, j.home_site_id, j.index_date, j.tf_sessions, j.best_course_sessions,
    j.best_course_minimum, j.tf_course_adequate, j.tf_course_ongoing, j.first_line_ingredient,
    j.first_line_start, j.first_line_adequate, j.first_line_ongoing, j.first_line_dose_mg,
    j.current_antidepressant, j.current_dose_mg, j.nightmares_on, j.prazosin_tried, j.irt_tried,
    j.benzodiazepine_active, j.last_response_on, j.treatment_resistant_on, j.referral_on,
    j.first_mdma_on, j.mdma_off_trial, j.hospice_on,
    case
        when j.hospice_on is not null
            then 'align PTSD care with the palliative care plan'
        when j.recent_mdma_off_trial
            then 'stop MDMA outside a trial and review'
        when j.benzodiazepine_active
            then 'discuss a gradual, patient-centred benzodiazepine taper'
        when coalesce(j.recent_response, false) and j.antidepressant_ongoing
            then 'continue the antidepressant at least 9-12 months after remission'
        when coalesce(j.recent_response, false)
            then 'monitor with PCL-5; offer booster sessions if symptoms return'
        when not j.tf_course_adequate and j.tf_course_ongoing
            then 'complete the trauma-focused course'
        when not j.tf_course_adequate and j.first_line_adequate
            then 'add a trauma-focused course to the medication (combined treatment)'
        when not j.tf_course_adequate
            then 'offer trauma-focused psychotherapy (PE, CPT or EMDR)'
        when not j.first_line_adequate and j.ongoing_first_line is not null
             and j.ongoing_first_line_dose < j.ongoing_first_line_min
            then format('raise %%s to an effective dose', j.ongoing_first_line)
        when not j.first_line_adequate and j.ongoing_first_line is not null
             and j.ongoing_first_line_dose is null
            then format('confirm the %%s dose', j.ongoing_first_line)
        when not j.first_line_adequate and j.ongoing_first_line is not null
            then format('continue %%s to an adequate trial', j.ongoing_first_line)
        when not j.first_line_adequate and j.current_antidepressant is not null
            then format('switch %%s to sertraline, paroxetine or venlafaxine',
                        j.current_antidepressant)
        when not j.first_line_adequate
            then 'add sertraline, paroxetine or venlafaxine to the trauma-focused therapy (combined treatment)'
        when j.nightmares_on is not null and not j.prazosin_tried and not j.irt_tried
            then 'consider prazosin or imagery rehearsal therapy for nightmares'
        when j.adequate_ssri_no_response and not j.had_venlafaxine
            then 'consider switching to venlafaxine'
        when j.referral_on is null
            then 'refer to a specialised PTSD programme'
        else 'follow up the specialised programme referral'
    end as next_step
from joined as j
