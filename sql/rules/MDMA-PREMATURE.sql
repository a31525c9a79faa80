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
        audit.readiness_gaps(
            r.tf_sessions_before, %(tf_min_sessions)s::integer, r.adequate_first_line_before,
            r.best_ingredient, r.best_trial_start, r.best_acute_covered_days,
            r.best_has_effective_dose, r.best_acute_end, r.event_date, %(acute_days)s::integer)
    ) as summary,
    r.source_table || ':' || r.source_id as evidence
from core.readiness as r
where r.event_kind = 'MDMA'
  and not (r.tf_sessions_before >= %(tf_min_sessions)s::integer and r.adequate_first_line_before)
