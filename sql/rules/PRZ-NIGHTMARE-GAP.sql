-- PRZ-NIGHTMARE-GAP: the first nightmare finding on or after the index date
-- (a NIGHTMARES event or an F51.5 diagnosis) with no prazosin fill from
-- lookback days before it to window days after it, once as_of is at least
-- window days after it. Case key: patient; case_date: nightmare date + window.
with findings as (
    select e.patient_id, e.event_date as found_on, 'clinical_events:' || e.event_id as source
    from core.clinical_events as e
    where e.is_current and e.event_type = 'NIGHTMARES' and e.event_date <= %(as_of)s::date
    union all
    select d.patient_id, d.diagnosed_on, 'diagnoses:' || d.diagnosis_id
    from core.diagnoses as d
    where d.is_current
      and d.code_system = 'ICD10CM'
      and upper(replace(d.code, '.', '')) = any(%(nightmare_icd10cm)s::text[])
      and d.diagnosed_on <= %(as_of)s::date
),

first_finding as (
    select distinct on (f.patient_id)
        f.patient_id,
        f.found_on,
        f.source,
        c.home_site_id
    from findings as f
    inner join core.ptsd_cohort as c on c.patient_id = f.patient_id
    where f.found_on >= c.index_date
    order by f.patient_id, f.found_on, f.source
)

select
    audit.case_id('PRZ-NIGHTMARE-GAP', n.patient_id) as case_id,
    'PRZ-NIGHTMARE-GAP' as rule_id,
    'low' as severity,
    'open' as status,
    n.patient_id,
    n.home_site_id as site_id,
    null::text as prescriber_id,
    n.found_on + %(nightmare_prazosin_window_days)s::integer as case_date,
    format(
        'Nightmares documented %%s; no prazosin fill from %%s to %%s',
        audit.iso(n.found_on),
        audit.iso(n.found_on - %(nightmare_prazosin_lookback_days)s::integer),
        audit.iso(n.found_on + %(nightmare_prazosin_window_days)s::integer)
    ) as summary,
    n.source as evidence
from first_finding as n
where n.found_on + %(nightmare_prazosin_window_days)s::integer <= %(as_of)s::date
  and not exists (
      select 1
      from core.fill_coverage as p
      where p.patient_id = n.patient_id
        and p.ingredient = 'prazosin'
        and p.filled_on between n.found_on - %(nightmare_prazosin_lookback_days)s::integer
                            and n.found_on + %(nightmare_prazosin_window_days)s::integer
  )
