-- PSY-INCOMPLETE: a completed trauma-focused course (last session +
-- course_gap_days before as_of), with a first session on or after the index
-- date minus course_index_lookback_days, that is not adequate: fewer sessions
-- than its modality's minimum, and no response from its first session to its
-- last + course_response_days. Case key: patient, course start; case_date:
-- the last session.
select
    audit.case_id('PSY-INCOMPLETE', t.patient_id, audit.iso(t.course_start)) as case_id,
    'PSY-INCOMPLETE' as rule_id,
    'medium' as severity,
    'open' as status,
    t.patient_id,
    t.last_site_id as site_id,
    null::text as prescriber_id,
    t.last_session as case_date,
    format(
        'Trauma-focused course (%%s) from %%s ended %%s after %%s of %%s sessions, with no response recorded',
        t.modalities, audit.iso(t.course_start), audit.iso(t.last_session), t.n_sessions,
        t.minimum
    ) as summary,
    t.evidence
from core.tf_courses as t
inner join core.ptsd_cohort as c on c.patient_id = t.patient_id
where not t.is_ongoing
  and t.course_start >= c.index_date - %(course_index_lookback_days)s::integer
  and not t.is_adequate
