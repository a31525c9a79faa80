-- SSRI-LOW-DOSE: an SSRI or venlafaxine trial (completed or ongoing), ending
-- on or after the index date, with enough covered days in its acute window but
-- no fill in the window at the minimum effective dose, and at least one fill
-- in the window with a known dose. Case key: patient, ingredient, trial start.
select
    audit.case_id('SSRI-LOW-DOSE', t.patient_id, t.ingredient, audit.iso(t.trial_start))
        as case_id,
    'SSRI-LOW-DOSE' as rule_id,
    'medium' as severity,
    'open' as status,
    t.patient_id,
    t.first_site_id as site_id,
    t.first_prescriber_id as prescriber_id,
    t.acute_target_date as case_date,
    format(
        '%%s trial from %%s: %%s covered days in the first %%s days, but the highest dose was %%s mg/day (effective from %%s mg/day)',
        initcap(t.ingredient), audit.iso(t.trial_start), t.acute_covered_days,
        %(acute_window_days)s::integer, audit.num(t.max_dose_in_window), audit.num(t.min_mg)
    ) as summary,
    audit.evidence('prescriptions', t.rx_ids) as evidence
from core.med_trials as t
inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
where t.drug_class in ('SSRI', 'SNRI')
  and t.trial_end >= c.index_date
  and t.acute_covered_days >= %(acute_days)s::integer
  and not t.has_effective_dose
  and t.has_known_dose
