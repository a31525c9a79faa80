-- MDMA-PREMATURE: the first MDMA fill or administration (on or off trial),
-- when before it the patient lacked tf_min_sessions TF sessions or an adequate
-- first-line trial (the TRD-PREMATURE test). Case key: patient.
select
    audit.case_id('MDMA-PREMATURE', r.patient_id) as case_id,
    'MDMA-PREMATURE' as rule_id,
    'high' as severity,
    'open' as status,
    r.patient_id,
    r.site_id,
    r.prescriber_id,
    r.event_date as case_date,
    format(
        'First MDMA on %%s before first-line treatment was optimised: %%s',
        audit.iso(r.event_date),
        r.gaps
    ) as summary,
    r.source_table || ':' || r.source_id as evidence
from core.readiness as r
where r.event_kind = 'MDMA'
  and not r.is_ready
