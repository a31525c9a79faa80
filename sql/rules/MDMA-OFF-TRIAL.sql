-- MDMA-OFF-TRIAL: every MDMA fill or administration (any setting) not dated
-- within an enrollment of the same patient ([enrolled_on, ended_on or as_of])
-- in a trial the registry marks approved. A trial missing from the registry
-- is not approved. One case per patient and date; case key: patient, date.
with mdma as (
    select f.*
    from core.drug_fills as f
    where f.drug_class = 'MDMA'
      and not exists (
          select 1
          from core.trial_enrollments as e
          inner join core.trials as t on t.trial_id = e.trial_id and t.is_current
          where e.is_current
            and e.patient_id = f.patient_id
            and t.approved
            and f.filled_on between e.enrolled_on and coalesce(e.ended_on, %(as_of)s::date)
            and e.enrolled_on <= %(as_of)s::date
      )
)

select
    audit.case_id('MDMA-OFF-TRIAL', m.patient_id, audit.iso(m.filled_on)) as case_id,
    'MDMA-OFF-TRIAL' as rule_id,
    'critical' as severity,
    'open' as status,
    m.patient_id,
    min(m.site_id) as site_id,
    min(m.prescriber_id) as prescriber_id,
    m.filled_on as case_date,
    format(
        'MDMA given %%s (%%s) outside an approved clinical trial',
        audit.iso(m.filled_on), string_agg(distinct m.setting, ', ' order by m.setting)
    ) as summary,
    audit.evidence('prescriptions', array_agg(m.rx_id order by m.rx_id)) as evidence
from mdma as m
group by m.patient_id, m.filled_on
