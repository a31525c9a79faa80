-- The workspace's views (schema `web`), the only relations the web role
-- reads. Patient-level views keep only the rows of the sites the request's
-- signed-in user may see (review.visible_sites(): none without a live
-- session); they are security barriers, so no function of a query on them
-- sees a row the filter drops. Re-created by every upgrade, like report.sql.

create or replace view web.me with (security_barrier) as
    select user_name, role, sites from review.session_user_row();

create or replace view web.cases with (security_barrier) as
    select c.*
    from report.cases as c
    where array[c.site_id, '*'] && (select review.visible_sites());

-- The same rows, narrow (no review, no long text): what counts and the
-- overview read.
create or replace view web.case_index with (security_barrier) as
    select c.case_id, c.rule_id, c.severity, c.status, c.site_id, c.prescriber_id, c.case_date,
           exists (select 1 from review.reviews as v where v.case_id = c.case_id) as reviewed
    from audit.cases as c
    where array[c.site_id, '*'] && (select review.visible_sites());

create or replace view web.reviews with (security_barrier) as
    select r.*
    from report.reviews as r
    inner join audit.cases as c on c.case_id = r.case_id
    where array[c.site_id, '*'] && (select review.visible_sites());

create or replace view web.assignments with (security_barrier) as
    select a.assignment_id, a.case_id, a.assignee, a.assigned_by, a.assigned_at
    from review.assignments as a
    inner join audit.cases as c on c.case_id = a.case_id
    where array[c.site_id, '*'] && (select review.visible_sites());

create or replace view web.pathway with (security_barrier) as
    select p.*
    from report.pathway as p
    where array[p.home_site_id, '*'] && (select review.visible_sites());

-- Aggregates (no patient): every signed-in user sees them.
create or replace view web.measures with (security_barrier) as
    select m.* from report.measures as m where exists (select 1 from review.session_user_row());

create or replace view web.rules as select * from report_shared.rules;

-- The access log: auditors only.
create or replace view web.access_log with (security_barrier) as
    select l.log_id, l.user_name, l.at, l.what, l.object_id, l.rows
    from review.access_log as l
    where (select review.session_role()) = 'auditor';

grant select on all tables in schema web to rxaudit_web;

-- Provenance: every version of each source row a visible case's rule
-- weighed (evidence "table:id"), with its batch, file and line, and the batch
-- that superseded it.
create or replace view web.case_sources with (security_barrier) as
    with ev as (
        select c.case_id, c.patient_id, split_part(e, ':', 1) as tbl,
               substr(e, strpos(e, ':') + 1) as id
        from audit.cases as c
        cross join lateral unnest(string_to_array(c.evidence, ';')) as e
        where array[c.site_id, '*'] && (select review.visible_sites())
    )
    select ev.case_id, ev.tbl || '.csv' as file_name, ev.id as record_id, b.batch_id,
           r.line_no, r.is_current, sb.batch_id as superseded_by_batch
    from ev
    cross join lateral (
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.prescriptions as x
        where ev.tbl = 'prescriptions' and x.rx_id = ev.id and x.patient_id = ev.patient_id
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.therapy_sessions as x
        where ev.tbl = 'therapy_sessions' and x.session_id = ev.id and x.patient_id = ev.patient_id
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.clinical_events as x
        where ev.tbl = 'clinical_events' and x.event_id = ev.id and x.patient_id = ev.patient_id
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.diagnoses as x
        where ev.tbl = 'diagnoses' and x.diagnosis_id = ev.id and x.patient_id = ev.patient_id
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.assessments as x
        where ev.tbl = 'assessments' and x.assessment_id = ev.id and x.patient_id = ev.patient_id
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.trial_enrollments as x
        where ev.tbl = 'trial_enrollments' and x.enrollment_id = ev.id
          and x.patient_id = ev.patient_id
    ) as r
    left join audit.batches as b on b.batch_no = r.batch_no
    left join audit.batches as sb on sb.batch_no = r.superseded_by;

grant select on web.case_sources to rxaudit_web;

-- The audits (no patient): which policy, with which hash, and when.
create or replace view web.runs with (security_barrier) as
    select r.run_id, r.policy_version, r.policy_sha256, r.as_of, r.finished_at, r.status
    from audit.runs as r
    where exists (select 1 from review.session_user_row());

grant select on web.runs to rxaudit_web;
