-- SSRI-EARLY-STOP: a completed antidepressant episode holding a fill day of a
-- judged antidepressant, during which the patient
-- had a response (a REMISSION event, or a PCL-5 drop to below 33 from 33 or
-- more: core.responses) dated within the episode, ended less than
-- continuation_days after the earliest such response. Excluded: hospice on or
-- before the case date. Case key: patient, episode start; case_date: episode end.
select
    audit.case_id('SSRI-EARLY-STOP', e.patient_id, audit.iso(e.episode_start)) as case_id,
    'SSRI-EARLY-STOP' as rule_id,
    'medium' as severity,
    case when h.hospice_on <= e.episode_end + %(hospice_lookahead_days)s::integer then 'excluded' else 'open' end as status,
    e.patient_id,
    e.first_site_id as site_id,
    e.first_prescriber_id as prescriber_id,
    e.episode_end as case_date,
    format(
        'Antidepressant (%%s) stopped %%s, %%s days after a response on %%s (continue at least %%s days)',
        e.ingredients, audit.iso(e.episode_end), e.episode_end - r.response_on,
        audit.iso(r.response_on), %(continuation_days)s::integer
    )
    || case when h.hospice_on <= e.episode_end + %(hospice_lookahead_days)s::integer then ' (excluded: hospice or palliative care)'
            else '' end as summary,
    e.evidence || ';' || r.source as evidence
from core.ad_episodes as e
inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
cross join lateral (
    select x.response_on, x.source
    from core.responses as x
    where x.patient_id = e.patient_id
      and x.response_on between e.episode_start and e.episode_end
    order by x.response_on, x.source
    limit 1
) as r
left join core.hospice as h on h.patient_id = e.patient_id
where not e.is_ongoing
  and e.has_judged
  and e.episode_end - r.response_on < %(continuation_days)s::integer
