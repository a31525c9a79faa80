-- PRZ-NIGHTMARE-GAP: the first nightmare finding on or after the index date (a
-- NIGHTMARES event or an F51.5 diagnosis, dated N) with no prazosin fill day
-- dated on or before N + nightmare_prazosin_window_days (at any earlier time:
-- a past trial counts), no IRT session dated [N - nightmare_irt_lookback_days,
-- N + window], and as_of at least window days after N. A prazosin fill day
-- counts when its daily dose is unknown or at least prazosin_tried_min_mg (a
-- year at 1 mg is not a trial of prazosin). Excluded: hospice on or
-- before the case date. Case key: patient; case_date: N + window.
with first_finding as (
    select distinct on (f.patient_id)
        f.patient_id,
        f.found_on,
        f.source,
        c.home_site_id
    from core.nightmare_findings as f
    inner join core.ptsd_cohort as c on c.patient_id = f.patient_id
    where f.found_on >= c.index_date
    order by f.patient_id, f.found_on, f.source
)

select
    audit.case_id('PRZ-NIGHTMARE-GAP', n.patient_id) as case_id,
    'PRZ-NIGHTMARE-GAP' as rule_id,
    'low' as severity,
    case when h.hospice_on <= n.found_on + %(nightmare_prazosin_window_days)s::integer + %(hospice_lookahead_days)s::integer
         then 'excluded' else 'open' end as status,
    n.patient_id,
    n.home_site_id as site_id,
    null::text as prescriber_id,
    n.found_on + %(nightmare_prazosin_window_days)s::integer as case_date,
    format(
        'Nightmares documented %%s; no prazosin fill by %%s and no imagery rehearsal therapy from %%s to %%s',
        audit.iso(n.found_on),
        audit.iso(n.found_on + %(nightmare_prazosin_window_days)s::integer),
        audit.iso(n.found_on - %(nightmare_irt_lookback_days)s::integer),
        audit.iso(n.found_on + %(nightmare_prazosin_window_days)s::integer)
    )
    || case when h.hospice_on <= n.found_on + %(nightmare_prazosin_window_days)s::integer + %(hospice_lookahead_days)s::integer
            then ' (excluded: hospice or palliative care)' else '' end as summary,
    n.source as evidence
from first_finding as n
left join core.hospice as h on h.patient_id = n.patient_id
where n.found_on + %(nightmare_prazosin_window_days)s::integer <= %(as_of)s::date
  and not exists (
      select 1
      from core.fill_coverage as p
      where p.patient_id = n.patient_id
        and p.ingredient = 'prazosin'
        and (p.daily_dose_mg is null or p.daily_dose_mg >= %(prazosin_tried_min_mg)s::numeric)
        and p.filled_on <= n.found_on + %(nightmare_prazosin_window_days)s::integer
  )
  and not exists (
      select 1
      from core.therapy_sessions as s
      where s.is_current
        and s.patient_id = n.patient_id
        and s.modality = 'IRT'
        and s.session_date between n.found_on - %(nightmare_irt_lookback_days)s::integer
                               and n.found_on + %(nightmare_prazosin_window_days)s::integer
  )
