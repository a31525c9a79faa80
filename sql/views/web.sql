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
