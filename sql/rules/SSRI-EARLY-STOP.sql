-- SSRI-EARLY-STOP: a completed SSRI or venlafaxine trial during which the
-- patient reached remission (a REMISSION event, or the first PCL-5 score below
-- remission_pcl5_below, dated within the trial), ended less than
-- continuation_days after the remission date. Case key: patient, ingredient,
-- trial start.
with remission as (
    select
        t.patient_id,
        t.ingredient,
        t.trial_no,
        r.remission_date,
        r.source
    from core.med_trials as t
    inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
    cross join lateral (
        select x.remission_date, x.source
        from (
            select e.event_date as remission_date, 'clinical_events:' || e.event_id as source
            from core.clinical_events as e
            where e.is_current
              and e.patient_id = t.patient_id
              and e.event_type = 'REMISSION'
              and e.event_date between t.trial_start and t.trial_end
            union all
            select a.assessed_on, 'assessments:' || a.assessment_id
            from (
                select a1.*
                from core.assessments as a1
                where a1.is_current
                  and a1.patient_id = t.patient_id
                  and a1.instrument = 'PCL5'
                  and a1.score < %(remission_pcl5_below)s::integer
                  and a1.assessed_on between t.trial_start and t.trial_end
                order by a1.assessed_on, a1.assessment_id
                limit 1
            ) as a
        ) as x
        order by x.remission_date, x.source
        limit 1
    ) as r
    where t.drug_class in ('SSRI', 'SNRI')
      and not t.is_ongoing
)

select
    audit.case_id('SSRI-EARLY-STOP', t.patient_id, t.ingredient, audit.iso(t.trial_start))
        as case_id,
    'SSRI-EARLY-STOP' as rule_id,
    'medium' as severity,
    'open' as status,
    t.patient_id,
    t.first_site_id as site_id,
    t.first_prescriber_id as prescriber_id,
    t.trial_end as case_date,
    format(
        '%%s stopped %%s, %%s days after remission on %%s (continue at least %%s days)',
        initcap(t.ingredient), audit.iso(t.trial_end), t.trial_end - r.remission_date,
        audit.iso(r.remission_date), %(continuation_days)s::integer
    ) as summary,
    audit.evidence('prescriptions', t.rx_ids) || ';' || r.source as evidence
from remission as r
inner join core.med_trials as t using (patient_id, ingredient, trial_no)
where t.trial_end - r.remission_date < %(continuation_days)s::integer
