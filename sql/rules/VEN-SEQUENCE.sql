-- VEN-SEQUENCE: a venlafaxine trial starting on or after the index date with
-- no SSRI fill in the ven_lookback_days before it. Case key: patient, trial start.
select
    audit.case_id('VEN-SEQUENCE', t.patient_id, audit.iso(t.trial_start)) as case_id,
    'VEN-SEQUENCE' as rule_id,
    'low' as severity,
    'open' as status,
    t.patient_id,
    t.first_site_id as site_id,
    t.first_prescriber_id as prescriber_id,
    t.trial_start as case_date,
    format(
        'Venlafaxine started %%s with no SSRI fill in the previous %%s days',
        audit.iso(t.trial_start), %(ven_lookback_days)s::integer
    ) as summary,
    'prescriptions:' || t.rx_ids[1] as evidence
from core.med_trials as t
inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
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
