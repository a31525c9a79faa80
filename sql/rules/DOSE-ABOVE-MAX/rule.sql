-- DOSE-ABOVE-MAX: a fill day of an antidepressant whose daily dose (same-day
-- fills summed) exceeds the ingredient's maximum: paroxetine CR's for CR fill
-- days, citalopram's citalopram_older_max_mg from citalopram_older_age (no
-- birth year: no known age, the ingredient's maximum). One case per trial.
-- Excluded: hospice on or before the case date.
-- Case key: patient, ingredient, trial start; case_date: the first such fill day.
select
    audit.case_id('DOSE-ABOVE-MAX', t.patient_id, t.ingredient, audit.iso(t.trial_start))
        as case_id,
    'DOSE-ABOVE-MAX' as rule_id,
    'medium' as severity,
    case when h.hospice_on <= t.first_above_max_on + %(hospice_lookahead_days)s::integer then 'excluded' else 'open' end as status,
    t.patient_id,
    t.first_above_max_site_id as site_id,
    t.first_above_max_prescriber_id as prescriber_id,
    t.first_above_max_on as case_date,
    format(
        '%%s %%s mg/day filled %%s, above the maximum of %%s mg/day',
        initcap(t.ingredient), audit.num(t.first_above_max_mg), audit.iso(t.first_above_max_on),
        audit.num(t.first_above_max_limit_mg)
    )
    || case when h.hospice_on <= t.first_above_max_on + %(hospice_lookahead_days)s::integer
            then ' (excluded: hospice or palliative care)' else '' end as summary,
    t.first_above_max_evidence as evidence
from core.med_trials as t
inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
left join core.hospice as h on h.patient_id = t.patient_id
where t.drug_class in ('SSRI', 'SNRI')
  and t.first_above_max_on is not null
