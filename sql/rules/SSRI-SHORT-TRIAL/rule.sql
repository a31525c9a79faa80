-- SSRI-SHORT-TRIAL: a completed antidepressant episode (class level: a switch
-- within the gap stays in the episode) holding a fill day of a judged
-- antidepressant (an episode of other antidepressants only is never judged),
-- ending on or after the PTSD index date, with fewer than acute_days covered
-- days in its first acute_window_days. An episode starting less than
-- washout_days after the patient's history start is not judged (it may
-- continue treatment begun before the extract). Severity info when the
-- patient's next antidepressant episode starts within switch_window_days
-- after its end (a switch after a washout). Excluded: hospice or palliative
-- care up to hospice_lookahead_days after the case date.
-- Case key: patient, episode start; case_date: episode end.
select
    audit.case_id('SSRI-SHORT-TRIAL', e.patient_id, audit.iso(e.episode_start)) as case_id,
    'SSRI-SHORT-TRIAL' as rule_id,
    case when e.next_episode_start <= e.episode_end + %(switch_window_days)s::integer
         then 'info' else 'medium' end as severity,
    case when h.hospice_on <= e.episode_end + %(hospice_lookahead_days)s::integer then 'excluded' else 'open' end as status,
    e.patient_id,
    e.first_site_id as site_id,
    e.first_prescriber_id as prescriber_id,
    e.episode_end as case_date,
    format(
        'Antidepressant episode (%%s) from %%s stopped %%s: %%s covered days in the first %%s days (%%s needed)',
        e.ingredients, audit.iso(e.episode_start), audit.iso(e.episode_end),
        e.acute_covered_days, %(acute_window_days)s::integer, %(acute_days)s::integer
    )
    || case when e.next_episode_start <= e.episode_end + %(switch_window_days)s::integer
            then format('; a new antidepressant episode started %%s (a switch after a washout)',
                        audit.iso(e.next_episode_start))
            else '' end
    || case when h.hospice_on <= e.episode_end + %(hospice_lookahead_days)s::integer then ' (excluded: hospice or palliative care)'
            else '' end as summary,
    e.evidence
from core.ad_episodes as e
inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
left join core.hospice as h on h.patient_id = e.patient_id
where not e.is_ongoing
  and e.has_judged
  and e.episode_end >= c.index_date
  and e.acute_covered_days < %(acute_days)s::integer
  and e.episode_start >= c.history_start + %(washout_days)s::integer
