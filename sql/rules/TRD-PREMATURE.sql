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
        r.gaps
    ) as summary,
    r.source_table || ':' || r.source_id as evidence
from core.readiness as r
inner join core.ptsd_cohort as c on c.patient_id = r.patient_id
where r.event_kind = 'TREATMENT_RESISTANT'
  and not r.is_ready
