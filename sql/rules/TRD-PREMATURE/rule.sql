-- TRD-PREMATURE: the first TREATMENT_RESISTANT label, unless before it the
-- patient had both an adequate TF course and an adequate first-line trial
-- (adequacy dates strictly before the label; core.readiness). Severity high;
-- info when the label is less than short_history_days after the patient's history start
-- (what was tried before the extract is unknown). Case key: patient.
select
    audit.case_id('TRD-PREMATURE', r.patient_id) as case_id,
    'TRD-PREMATURE' as rule_id,
    case when r.event_date < c.history_start + %(short_history_days)s::integer
         then 'info' else 'high' end as severity,
    'open' as status,
    r.patient_id,
    c.home_site_id as site_id,
    null::text as prescriber_id,
    r.event_date as case_date,
    format(
        'Labelled treatment-resistant on %%s before adequate first-line treatment: %%s',
        audit.iso(r.event_date), r.gaps
    )
    || case when r.event_date < c.history_start + %(short_history_days)s::integer
            then format(' (the history starts %%s: earlier treatment unknown)',
                        audit.iso(c.history_start))
            else '' end as summary,
    r.evidence
from core.readiness as r
inner join core.ptsd_cohort as c on c.patient_id = r.patient_id
where r.event_kind = 'TREATMENT_RESISTANT'
  and not r.is_ready
