-- SSRI-LOW-DOSE: a trial (completed or ongoing) of an antidepressant, ending on
-- or after the PTSD index date, with at least acute_days covered days in its
-- first acute_window_days, in which no fill day dated in those days reached the
-- minimum effective dose (paroxetine CR's for CR fill days), and at least one
-- has a known daily dose. Excluded: hospice on or before the case date.
-- Case key: patient, ingredient, trial start; case_date: the day on which the
-- acute_days-th covered day of the window falls.
select
    audit.case_id('SSRI-LOW-DOSE', t.patient_id, t.ingredient, audit.iso(t.trial_start))
        as case_id,
    'SSRI-LOW-DOSE' as rule_id,
    'medium' as severity,
    case when h.hospice_on <= t.acute_target_date + %(hospice_lookahead_days)s::integer then 'excluded' else 'open' end as status,
    t.patient_id,
    t.first_site_id as site_id,
    t.first_prescriber_id as prescriber_id,
    t.acute_target_date as case_date,
    format(
        '%%s trial from %%s: %%s covered days in the first %%s days, but the highest dose was %%s mg/day (effective from %%s mg/day)',
        initcap(t.ingredient) || case when t.any_cr then ' CR' else '' end,
        audit.iso(t.trial_start), t.acute_covered_days,
        %(acute_window_days)s::integer, audit.num(t.window_max_dose_mg), audit.num(t.min_mg)
    )
    || case when h.hospice_on <= t.acute_target_date + %(hospice_lookahead_days)s::integer
            then ' (excluded: hospice or palliative care)' else '' end as summary,
    t.evidence
from core.med_trials as t
inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
left join core.hospice as h on h.patient_id = t.patient_id
where t.drug_class in ('SSRI', 'SNRI')
  and t.trial_end >= c.index_date
  and t.acute_covered_days >= %(acute_days)s::integer
  and not t.window_effective_dose
  and t.window_known_dose
