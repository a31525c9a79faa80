-- MDMA-OFF-TRIAL: every MDMA row (any setting, any source type) not dated
-- within an enrollment of the same patient ([enrolled_on, ended_on or as_of])
-- in a trial the registry marks approved (a trial missing from the registry
-- is not approved). One case per patient and date: critical when MDMA was
-- given (any row dispensed, administered or ordered); info when every row of
-- the date is reported use (the case names no prescriber).
-- Case key: patient, date.
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
),

days as (
    select
        m.patient_id,
        m.filled_on,
        bool_or(m.source_type <> 'reported') as given,
        (array_agg(m.site_id order by m.source_type = 'reported', m.rx_id))[1] as site_id,
        (array_agg(m.prescriber_id order by m.rx_id)
            filter (where m.source_type <> 'reported'))[1] as prescriber_id,
        string_agg(distinct m.setting, ', ' order by m.setting)
            filter (where m.source_type <> 'reported') as settings,
        string_agg('prescriptions:' || m.rx_id, ';' order by m.rx_id) as evidence
    from mdma as m
    group by m.patient_id, m.filled_on
)

select
    audit.case_id('MDMA-OFF-TRIAL', d.patient_id, audit.iso(d.filled_on)) as case_id,
    'MDMA-OFF-TRIAL' as rule_id,
    case when d.given then 'critical' else 'info' end as severity,
    'open' as status,
    d.patient_id,
    d.site_id,
    case when d.given then d.prescriber_id end as prescriber_id,
    d.filled_on as case_date,
    case when d.given
         then format('MDMA given %%s (%%s) outside an approved clinical trial',
                     audit.iso(d.filled_on), d.settings)
         else format('Patient-reported: non-prescribed MDMA use recorded %%s', audit.iso(d.filled_on))
    end as summary,
    d.evidence
from days as d
