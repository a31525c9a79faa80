-- For the two "before the event" tests (TRD-PREMATURE, MDMA-PREMATURE): the
-- patient's first treatment-resistant label and first MDMA row that is not
-- reported use (any setting, on or off trial), and what treatment was
-- adequate strictly before each: an adequate TF course (adequacy date before
-- the event; two short courses do not add up) and an adequate first-line
-- trial (adequacy date before the event). is_ready: both held. gaps: what was
-- missing, as the rules' summaries say it. evidence: the event's row, the TF
-- sessions and the antidepressant fills dated before it.
with events as (
    select
        e.patient_id,
        'TREATMENT_RESISTANT' as event_kind,
        min(e.event_date) as event_date,
        'clinical_events:' || (array_agg(e.event_id order by e.event_date, e.event_id))[1]
            as source,
        null::text as site_id,
        null::text as prescriber_id,
        false as on_trial
    from core.clinical_events as e
    inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
    where e.is_current
      and e.event_type = 'TREATMENT_RESISTANT'
      and e.event_date <= %(as_of)s
    group by e.patient_id

    union all

    select
        m.patient_id,
        'MDMA',
        m.filled_on,
        m.source,
        m.site_id,
        m.prescriber_id,
        exists (
            select 1
            from core.trial_enrollments as e
            inner join core.trials as t on t.trial_id = e.trial_id and t.is_current
            where e.is_current
              and e.patient_id = m.patient_id
              and t.approved
              and m.filled_on between e.enrolled_on and coalesce(e.ended_on, %(as_of)s::date)
        )
    from (
        select
            f.patient_id,
            min(f.filled_on) as filled_on,
            'prescriptions:' || (array_agg(f.rx_id order by f.filled_on, f.rx_id))[1] as source,
            (array_agg(f.site_id order by f.filled_on, f.rx_id))[1] as site_id,
            (array_agg(f.prescriber_id order by f.filled_on, f.rx_id))[1] as prescriber_id
        from core.drug_fills as f
        where f.drug_class = 'MDMA' and f.source_type <> 'reported'
        group by f.patient_id
    ) as m
),

judged as (
    select
        ev.*,
        course.n_before as best_course_sessions,
        course.minimum as best_course_minimum,
        course.modality as best_course_modality,
        coalesce(course.adequate, false) as adequate_course_before,
        trial.ingredient as best_ingredient,
        trial.trial_start as best_trial_start,
        trial.effective_before as best_effective_days,
        trial.known_dose as best_known_dose,
        coalesce(trial.adequate, false) as adequate_first_line_before
    from events as ev
    left join lateral (
        select
            c.modality,
            c.minimum,
            c.adequacy_date < ev.event_date as adequate,
            (select count(*) from core.tf_sessions as s
             where s.patient_id = c.patient_id
               and s.session_date between c.course_start
                                      and least(c.last_session, ev.event_date - 1))::integer
                as n_before
        from core.tf_courses as c
        where c.patient_id = ev.patient_id and c.course_start < ev.event_date
        order by (c.adequacy_date < ev.event_date) desc nulls last,
                 4 desc, c.course_start desc
        limit 1
    ) as course on true
    left join lateral (
        select
            t.ingredient,
            t.trial_start,
            t.adequacy_date < ev.event_date as adequate,
            (select coalesce(sum(greatest(0, least(f.cover_end, %(as_of)s::date, ev.event_date - 1)
                                             - f.cover_start + 1)), 0)
             from core.fill_coverage as f
             where f.patient_id = t.patient_id and f.ingredient = t.ingredient
               and f.trial_no = t.trial_no and f.daily_dose_mg >= f.min_mg)::integer
                as effective_before,
            t.window_known_dose as known_dose
        from core.med_trials as t
        where t.patient_id = ev.patient_id and t.first_line and t.trial_start < ev.event_date
        order by (t.adequacy_date < ev.event_date) desc nulls last, 4 desc, t.trial_start desc
        limit 1
    ) as trial on true
)

select
    j.patient_id,
    j.event_kind,
    j.event_date,
    j.source,
    j.site_id,
    j.prescriber_id,
    j.on_trial,
    j.best_course_sessions,
    j.best_course_minimum,
    j.adequate_course_before,
    j.best_ingredient,
    j.adequate_first_line_before,
    j.adequate_course_before and j.adequate_first_line_before as is_ready,
    'adequate TF course: '
    || case
           when j.adequate_course_before then 'yes'
           when j.best_course_sessions is null then 'none'
           else format('none (best: %%s of %%s %%s sessions)', j.best_course_sessions,
                       j.best_course_minimum, j.best_course_modality)
       end
    || '; adequate first-line trial: '
    || case
           when j.adequate_first_line_before then 'yes'
           when j.best_ingredient is null then 'none'
           when j.best_effective_days = 0 and not j.best_known_dose
               then format('none (%%s from %%s: dose unknown)', j.best_ingredient,
                           audit.iso(j.best_trial_start))
           else format('none (%%s from %%s: %%s of %%s days at an effective dose)',
                       j.best_ingredient, audit.iso(j.best_trial_start),
                       j.best_effective_days, %(acute_days)s::integer)
       end as gaps,
    concat_ws(';', j.source,
        (select string_agg('therapy_sessions:' || s.session_id, ';'
                           order by s.session_date, s.session_id)
         from core.tf_sessions as s
         where s.patient_id = j.patient_id and s.session_date < j.event_date),
        (select string_agg('prescriptions:' || f.rx_id, ';' order by f.filled_on, f.rx_id)
         from core.drug_fills as f
         where f.patient_id = j.patient_id and f.is_fill and f.drug_class in ('SSRI', 'SNRI')
           and f.filled_on < j.event_date)
    ) as evidence
from judged as j
