-- TRD-PREMATURE: the first TREATMENT_RESISTANT label, unless before it the
-- patient had at least tf_min_sessions TF sessions and an adequate first-line
-- antidepressant trial (see core.readiness). Case key: patient.
select
    audit.case_id('TRD-PREMATURE', r.patient_id) as case_id,
    'TRD-PREMATURE' as rule_id,
    'high' as severity,
    'open' as status,
    r.patient_id,
    c.home_site_id as site_id,
    null::text as prescriber_id,
    r.event_date as case_date,
    format(
        'Labelled treatment-resistant on %%s before adequate first-line treatment: %%s',
        audit.iso(r.event_date),
        audit.readiness_gaps(
            r.tf_sessions_before, %(tf_min_sessions)s::integer, r.adequate_first_line_before,
            r.best_ingredient, r.best_trial_start, r.best_acute_covered_days,
            r.best_has_effective_dose, r.best_acute_end, r.event_date, %(acute_days)s::integer)
    ) as summary,
    r.source_table || ':' || r.source_id as evidence
from core.readiness as r
inner join core.ptsd_cohort as c on c.patient_id = r.patient_id
where r.event_kind = 'TREATMENT_RESISTANT'
  and not (r.tf_sessions_before >= %(tf_min_sessions)s::integer and r.adequate_first_line_before)
