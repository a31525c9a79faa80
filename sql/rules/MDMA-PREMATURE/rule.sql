-- MDMA-PREMATURE: the first MDMA row that is not reported use (on or off
-- trial), when before it the patient lacked an adequate TF course or an
-- adequate first-line trial (the TRD-PREMATURE test). Severity high off
-- trial; info within an approved trial (eligibility is the trial's decision)
-- or less than short_history_days after the patient's history start. Case key: patient.
select
    audit.case_id('MDMA-PREMATURE', r.patient_id) as case_id,
    'MDMA-PREMATURE' as rule_id,
    case when r.on_trial
           or r.event_date < c.history_start + %(short_history_days)s::integer
         then 'info' else 'high' end as severity,
    'open' as status,
    r.patient_id,
    r.site_id,
    r.prescriber_id,
    r.event_date as case_date,
    format(
        'First MDMA on %%s%%s before first-line treatment was optimised: %%s',
        audit.iso(r.event_date),
        case when r.on_trial then ' (within an approved trial)' else '' end,
        r.gaps
    )
    || case when r.event_date < c.history_start + %(short_history_days)s::integer
            then format(' (the history starts %%s: earlier treatment unknown)',
                        audit.iso(c.history_start))
            else '' end as summary,
    r.evidence
from core.readiness as r
inner join core.ptsd_cohort as c on c.patient_id = r.patient_id
where r.event_kind = 'MDMA'
  and not r.is_ready
