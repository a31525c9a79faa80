-- VEN-SEQUENCE (info): a venlafaxine trial starting on or after the index date
-- with no fill day of an SSRI dated [start - ven_lookback_days, start - 1].
-- Excluded: hospice on or before the trial start.
-- Case key: patient, trial start; case_date: trial start.
select
    audit.case_id('VEN-SEQUENCE', t.patient_id, audit.iso(t.trial_start)) as case_id,
    'VEN-SEQUENCE' as rule_id,
    'info' as severity,
    case when h.hospice_on <= t.trial_start + %(hospice_lookahead_days)s::integer then 'excluded' else 'open' end as status,
    t.patient_id,
    t.first_site_id as site_id,
    t.first_prescriber_id as prescriber_id,
    t.trial_start as case_date,
    format(
        'Venlafaxine started %%s with no SSRI fill in the previous %%s days',
        audit.iso(t.trial_start), %(ven_lookback_days)s::integer
    )
    || case when h.hospice_on <= t.trial_start + %(hospice_lookahead_days)s::integer then ' (excluded: hospice or palliative care)'
            else '' end as summary,
    split_part(t.evidence, ';', 1) as evidence
from core.med_trials as t
inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
left join core.hospice as h on h.patient_id = t.patient_id
where t.ingredient = 'venlafaxine'
  and t.trial_start >= c.index_date
  and not exists (
      select 1
      from core.fill_coverage as s
      where s.patient_id = t.patient_id
        and s.drug_class = 'SSRI'
        and s.filled_on between t.trial_start - %(ven_lookback_days)s::integer
                            and t.trial_start - 1
  )
