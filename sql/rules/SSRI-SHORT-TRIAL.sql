-- SSRI-SHORT-TRIAL: a completed SSRI or venlafaxine trial, ending on or after
-- the index date, with fewer than acute_days covered days in its acute window.
-- Case key: patient, ingredient, trial start.
select
    audit.case_id('SSRI-SHORT-TRIAL', t.patient_id, t.ingredient, audit.iso(t.trial_start))
        as case_id,
    'SSRI-SHORT-TRIAL' as rule_id,
    'medium' as severity,
    'open' as status,
    t.patient_id,
    t.first_site_id as site_id,
    t.first_prescriber_id as prescriber_id,
    t.trial_end as case_date,
    format(
        '%%s trial of %%s covered days (first %%s days: %%s of %%s needed), stopped %%s',
        initcap(t.ingredient), t.covered_days, %(acute_window_days)s::integer,
        t.acute_covered_days, %(acute_days)s::integer, audit.iso(t.trial_end)
    ) as summary,
    audit.evidence('prescriptions', t.rx_ids) as evidence
from core.med_trials as t
inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
where t.drug_class in ('SSRI', 'SNRI')
  and not t.is_ongoing
  and t.trial_end >= c.index_date
  and t.acute_covered_days < %(acute_days)s::integer
