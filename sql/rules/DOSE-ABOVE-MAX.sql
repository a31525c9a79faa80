-- DOSE-ABOVE-MAX: a trial fill of an SSRI or venlafaxine whose daily dose is
-- above the ingredient's maximum. One case per trial; case key: patient,
-- ingredient, trial start; case_date: the first such fill.
select
    audit.case_id('DOSE-ABOVE-MAX', t.patient_id, t.ingredient, audit.iso(t.trial_start))
        as case_id,
    'DOSE-ABOVE-MAX' as rule_id,
    'medium' as severity,
    'open' as status,
    t.patient_id,
    t.first_above_max_site_id as site_id,
    t.first_above_max_prescriber_id as prescriber_id,
    t.first_above_max_on as case_date,
    format(
        '%%s %%s mg/day dispensed %%s, above the labelled maximum of %%s mg/day',
        initcap(t.ingredient), audit.num(t.first_above_max_mg), audit.iso(t.first_above_max_on),
        audit.num(t.max_mg)
    ) as summary,
    'prescriptions:' || t.first_above_max_rx_id as evidence
from core.med_trials as t
inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
where t.drug_class in ('SSRI', 'SNRI')
  and t.first_above_max_on is not null
