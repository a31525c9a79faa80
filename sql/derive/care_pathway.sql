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
    -- the antidepressant taken now: the latest-started ongoing trial of any
    -- antidepressant (other antidepressants too)
    select distinct on (t.patient_id)
        t.patient_id, t.ingredient, t.last_dose_mg, t.trial_start
    from core.med_trials as t
    where t.drug_class in ('SSRI', 'SNRI', 'OTHER_AD') and t.is_ongoing
    order by t.patient_id, t.trial_start desc, t.ingredient
),

ad_ongoing as (
    select distinct on (e.patient_id) e.patient_id, e.episode_start, e.ingredients
    from core.ad_episodes as e
    where e.is_ongoing
    order by e.patient_id, e.episode_start desc
),

prazosin as (
    -- prazosin counted as tried: a fill day of unknown dose or at least
    -- prazosin_tried_min_mg
    select distinct f.patient_id
    from core.fill_coverage as f
    where f.ingredient = 'prazosin'
      and (f.daily_dose_mg is null or f.daily_dose_mg >= %(prazosin_tried_min_mg)s::numeric)
),

meds as (
    select
        patient_id,
        bool_or(ingredient = 'venlafaxine') as had_venlafaxine
    from core.med_trials
    group by patient_id
),

ssri_no_response as (
    -- an adequate SSRI trial, completed, with no response from its start on
    select distinct on (t.patient_id) t.patient_id, t.ingredient, t.trial_start
    from core.med_trials as t
    where t.drug_class = 'SSRI' and t.adequacy_date is not null and not t.is_ongoing
      and not exists (
          select 1 from core.responses as r
          where r.patient_id = t.patient_id and r.response_on >= t.trial_start)
    order by t.patient_id, t.trial_start desc, t.ingredient
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
    -- the latest response, and whether it still holds at as_of: no TRD label
    -- after it, and either (response_holds_days = 0) no relapse score after it
    -- (a PCL-5 of remission_pcl5_below or more; a CAPS-5 above
    -- caps5_response_fraction of the response's CAPS-5 baseline, or of
    -- caps5_min_baseline or more when the response was not by CAPS-5), or
    -- (policies before 2027.2) it is dated in the response_holds_days before as_of
    select distinct on (r.patient_id)
        r.patient_id,
        r.response_on as last_response_on,
        r.kind as last_response_kind,
        case
            when %(response_holds_days)s::integer > 0
                then r.response_on > %(as_of)s::date - %(response_holds_days)s::integer
            else not exists (
                select 1
                from core.assessments as a
                where a.is_current
                  and a.patient_id = r.patient_id
                  and a.assessed_on > r.response_on
                  and a.assessed_on <= %(as_of)s::date
                  and ((a.instrument = 'PCL5' and a.score >= %(remission_pcl5_below)s::integer)
                       or (a.instrument = 'CAPS5'
                           and case when r.kind = 'CAPS5'
                                    then a.score > %(caps5_response_fraction)s::numeric
                                                   * r.caps5_baseline
                                    else a.score >= %(caps5_min_baseline)s::integer end))
            )
        end as holds_by_scores
    from core.responses as r
    order by r.patient_id, r.response_on desc, r.kind = 'CAPS5' desc, r.source
),

measured as (
    select a.patient_id, max(a.assessed_on) as last_measured_on
    from core.assessments as a
    inner join core.ptsd_cohort as c on c.patient_id = a.patient_id
    where a.is_current and a.instrument in ('PCL5', 'CAPS5') and a.assessed_on <= %(as_of)s::date
    group by a.patient_id
),

flags as (
    select
        patient_id,
        bool_or(rule_id = 'MDMA-OFF-TRIAL' and severity = 'critical'
                and case_date > %(as_of)s::date - 365) as recent_mdma_off_trial,
        bool_or(rule_id = 'MDMA-OFF-TRIAL' and severity = 'critical') as mdma_off_trial,
        max(case_date) filter (where severity = 'critical') as last_off_trial_on
    from audit.run_cases
    where run_id = %(run_id)s and status = 'open' and rule_id = 'MDMA-OFF-TRIAL'
    group by patient_id
),

bzd_open as (
    -- an ongoing benzodiazepine episode whose case is open (not excluded)
    select distinct on (e.patient_id)
        e.patient_id, e.is_tapered, e.taper_top_mg, e.taper_last_mg, e.ingredients,
        e.episode_start
    from core.bzd_episodes as e
    inner join audit.run_cases as rc
        on rc.run_id = %(run_id)s
       and rc.case_id = audit.case_id('BZD-PTSD', e.patient_id, audit.iso(e.episode_start))
       and rc.status = 'open'
    where e.is_ongoing
    order by e.patient_id, e.episode_start desc
),

last_course as (
    select distinct on (patient_id) patient_id, n_sessions, minimum, last_session, is_ongoing
    from core.tf_courses
    order by patient_id, is_ongoing desc, n_sessions::numeric / minimum desc, course_start desc
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
        pz.patient_id is not null as prazosin_tried,
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
        r.holds_by_scores
            and (ev.last_trd_on is null or ev.last_trd_on <= r.last_response_on) as recent_response,
        r.last_response_kind,
        ado.patient_id is not null as antidepressant_ongoing,
        ado.ingredients as ongoing_ingredients,
        ado.episode_start as ongoing_since,
        ca.trial_start as current_since,
        ms.last_measured_on,
        f.last_off_trial_on,
        bo.is_tapered as bzd_tapering,
        bo.taper_top_mg,
        bo.taper_last_mg,
        bo.ingredients as bzd_ingredients,
        bo.episode_start as bzd_since,
        lc.n_sessions as course_sessions,
        lc.minimum as course_minimum,
        lc.last_session as course_last_session,
        nr.ingredient as no_response_ingredient,
        nr.trial_start as no_response_start,
        c.age_90_plus
        or extract(year from %(as_of)s::date)::integer - c.birth_year
           >= %(paroxetine_older_age)s::integer as is_older,
        ofl.ingredient as ongoing_first_line,
        ofl.last_dose_mg as ongoing_first_line_dose,
        ofl.last_min_mg as ongoing_first_line_min,
        coalesce(m.had_venlafaxine, false) as had_venlafaxine,
        nr.patient_id is not null as adequate_ssri_no_response
    from core.ptsd_cohort as c
    left join tf on tf.patient_id = c.patient_id
    left join courses as co on co.patient_id = c.patient_id
    left join first_line as fl on fl.patient_id = c.patient_id
    left join ongoing_first_line as ofl on ofl.patient_id = c.patient_id
    left join current_ad as ca on ca.patient_id = c.patient_id
    left join meds as m on m.patient_id = c.patient_id
    left join ssri_no_response as nr on nr.patient_id = c.patient_id
    left join ad_ongoing as ado on ado.patient_id = c.patient_id
    left join prazosin as pz on pz.patient_id = c.patient_id
    left join measured as ms on ms.patient_id = c.patient_id
    left join last_course as lc on lc.patient_id = c.patient_id
    left join nightmares as nm on nm.patient_id = c.patient_id
    left join irt on irt.patient_id = c.patient_id
    left join events as ev on ev.patient_id = c.patient_id
    left join responses as r on r.patient_id = c.patient_id
    left join flags as f on f.patient_id = c.patient_id
    left join bzd_open as bo on bo.patient_id = c.patient_id
    left join core.hospice as h on h.patient_id = c.patient_id
    left join core.readiness as mdma
        on mdma.patient_id = c.patient_id and mdma.event_kind = 'MDMA'
),

choices as (
    -- the next step's first-line choices: from paroxetine_older_age at as_of
    -- no paroxetine (AGS Beers); with desvenlafaxine current, no venlafaxine
    select
        j.*,
        array_remove(array_remove(array['sertraline', 'paroxetine', 'venlafaxine'],
                                  case when coalesce(j.is_older, false) then 'paroxetine' end),
                     case when j.current_antidepressant = 'desvenlafaxine' then 'venlafaxine' end)
            as first_line_choices
    from joined as j
),

steps as (
    select
        j.*,
        case cardinality(j.first_line_choices)
            when 3 then j.first_line_choices[1] || ', ' || j.first_line_choices[2] || ' or '
                        || j.first_line_choices[3]
            when 2 then j.first_line_choices[1] || ' or ' || j.first_line_choices[2]
            else j.first_line_choices[1]
        end as choices_text,
        case
            when j.hospice_on is not null then 0
            when j.recent_mdma_off_trial then 1
            when j.benzodiazepine_active then 2
            when coalesce(j.recent_response, false) then 3
            when not j.tf_course_adequate then 4
            when %(measurement_days)s::integer > 0
             and (j.last_measured_on is null
                  or j.last_measured_on < %(as_of)s::date - %(measurement_days)s::integer) then 5
            when not j.first_line_adequate then 6
            when j.nightmares_on is not null and not j.prazosin_tried and not j.irt_tried then 7
            when j.adequate_ssri_no_response and not j.had_venlafaxine then 8
            when j.referral_on is null then 9
            else 10
        end as step_no
    from choices as j
)

select
    j.patient_id, j.home_site_id, j.index_date, j.tf_sessions, j.best_course_sessions,
    j.best_course_minimum, j.tf_course_adequate, j.tf_course_ongoing, j.first_line_ingredient,
    j.first_line_start, j.first_line_adequate, j.first_line_ongoing, j.first_line_dose_mg,
    j.current_antidepressant, j.current_dose_mg, j.nightmares_on, j.prazosin_tried, j.irt_tried,
    j.benzodiazepine_active, j.last_response_on, j.treatment_resistant_on, j.referral_on,
    j.first_mdma_on, j.mdma_off_trial, j.hospice_on,
    case j.step_no
        when 0 then 'align PTSD care with the palliative care plan'
        when 1 then 'stop MDMA outside a trial and review'
        when 2 then case when j.bzd_tapering then 'continue the gradual taper; monitor for withdrawal'
                         else 'discuss a gradual, patient-centred benzodiazepine taper' end
        when 3 then case when j.antidepressant_ongoing
                         then 'continue the antidepressant at least 9-12 months after remission'
                         else 'monitor with PCL-5; offer booster sessions if symptoms return' end
        when 4 then case
            when j.tf_course_ongoing then 'complete the trauma-focused course'
            when j.first_line_adequate
                then 'add a trauma-focused course to the medication (combined treatment)'
            else 'offer trauma-focused psychotherapy (PE, CPT or EMDR)' end
        when 5 then 'measure PTSD symptoms (PCL-5) before changing treatment'
        when 6 then case
            when j.ongoing_first_line is not null
             and j.ongoing_first_line_dose < j.ongoing_first_line_min
                then format('raise %%s to an effective dose', j.ongoing_first_line)
            when j.ongoing_first_line is not null and j.ongoing_first_line_dose is null
                then format('confirm the %%s dose', j.ongoing_first_line)
            when j.ongoing_first_line is not null
                then format('continue %%s to an adequate trial', j.ongoing_first_line)
            when j.current_antidepressant is not null
                then format('switch %%s to %%s', j.current_antidepressant, j.choices_text)
            else format('add %%s to the trauma-focused therapy (combined treatment)',
                        j.choices_text) end
        when 7 then 'consider prazosin or imagery rehearsal therapy for nightmares'
        when 8 then case when j.antidepressant_ongoing then 'consider switching to venlafaxine'
                         else 'consider venlafaxine' end
        when 9 then 'refer to a specialised PTSD programme'
        else 'follow up the specialised programme referral'
    end as next_step,
    -- the facts that chose the step
    case j.step_no
        when 0 then format('hospice or palliative care recorded %%s', audit.iso(j.hospice_on))
        when 1 then format('MDMA outside an approved trial on %%s', audit.iso(j.last_off_trial_on))
        when 2 then case
            when j.bzd_tapering then format('tapered from %%s mg to %%s mg (%%s)',
                                            audit.num(j.taper_top_mg), audit.num(j.taper_last_mg),
                                            j.bzd_ingredients)
            else format('%%s ongoing since %%s', j.bzd_ingredients, audit.iso(j.bzd_since)) end
        when 3 then format('response on %%s (%%s)%%s', audit.iso(j.last_response_on),
                           case j.last_response_kind when 'PCL5' then 'PCL-5'
                                when 'CAPS5' then 'CAPS-5' else 'remission recorded' end,
                           case when %(response_holds_days)s::integer = 0
                                then ', no relapse score since' else '' end)
                    || case when j.antidepressant_ongoing
                            then format('; %%s ongoing since %%s', j.ongoing_ingredients,
                                        audit.iso(j.ongoing_since))
                            else '; no antidepressant ongoing' end
        when 4 then case
            when j.tf_course_ongoing
                then format('%%s of %%s sessions so far, the last on %%s', j.course_sessions,
                            j.course_minimum, audit.iso(j.course_last_session))
            when j.tf_sessions = 0 then 'no trauma-focused session recorded'
            else format('best course %%s of %%s sessions, no response', j.best_course_sessions,
                        j.best_course_minimum) end
            || case when not j.tf_course_ongoing and j.first_line_adequate
                    then format('; adequate %%s trial from %%s', j.first_line_ingredient,
                                audit.iso(j.first_line_start))
                    else '' end
        when 5 then case when j.last_measured_on is null then 'no PCL-5 or CAPS-5 recorded'
                         else format('no PCL-5 or CAPS-5 since %%s', audit.iso(j.last_measured_on))
                    end
        when 6 then case
            when j.ongoing_first_line is not null and j.ongoing_first_line_dose is null
                then format('%%s ongoing, daily dose unknown', j.ongoing_first_line)
            when j.ongoing_first_line is not null
                then format('%%s %%s mg/day in force (effective from %%s mg/day)',
                            j.ongoing_first_line, audit.num(j.ongoing_first_line_dose),
                            audit.num(j.ongoing_first_line_min))
            when j.current_antidepressant is not null
                then format('%%s ongoing since %%s; no adequate first-line trial',
                            j.current_antidepressant, audit.iso(j.current_since))
            when j.first_line_ingredient is not null
                then format('no adequate first-line trial (best: %%s from %%s); no antidepressant ongoing',
                            j.first_line_ingredient, audit.iso(j.first_line_start))
            else 'no first-line antidepressant trial; no antidepressant ongoing' end
            || case when coalesce(j.is_older, false) and %(paroxetine_older_age)s::integer < 200
                    then format('; aged %%s or over: no paroxetine', %(paroxetine_older_age)s::integer)
                    else '' end
        when 7 then format('nightmares documented %%s; no prazosin tried and no imagery rehearsal therapy',
                           audit.iso(j.nightmares_on))
        when 8 then format('adequate %%s trial from %%s with no response; no venlafaxine', 
                           j.no_response_ingredient, audit.iso(j.no_response_start))
                    || case when j.antidepressant_ongoing
                            then format('; %%s ongoing', j.ongoing_ingredients) else '' end
        when 9 then 'no referral to a specialised programme recorded'
        else format('referred %%s', audit.iso(j.referral_on))
    end as next_step_reason
from steps as j
