-- The read-only views for dashboards and BI tools (report) and for sharing
-- outside the care team (report_shared). Re-created by every upgrade, after
-- the migrations and the functions: they are code, not history. Each is
-- "create or replace": a view may gain columns at its end, never lose or
-- reorder one (a BI tool's own views on them keep working); a change that
-- must drop a column is a migration.

create or replace view report.latest_run as
    select r.run_id, r.as_of, r.policy_version, r.policy_sha256, r.finished_at
    from audit.runs r
    where r.status in ('ok', 'rejected')
    order by r.finished_at desc nulls last, r.run_id desc
    limit 1;

-- Every case: its rule, guideline, what its reviews say together
-- (review.disposition: agreed, settled by a lead, or 'conflict'), its latest
-- review, and (resolved cases) why.
create or replace view report.cases as
    select
        c.case_id, c.rule_id, r.title as rule_title, c.severity, c.status, c.patient_id,
        c.site_id, c.prescriber_id, c.case_date, c.summary, c.evidence, r.guideline,
        c.policy_version, c.first_seen_run,
        case when c.status = 'resolved' then c.last_evaluated_run
             else coalesce((select l.run_id from report.latest_run as l), c.last_evaluated_run)
        end as last_seen_run,
        c.resolved_run,
        disp.status as review_status, rv.reviewer as last_reviewer,
        rv.reviewed_at as last_reviewed_at, c.resolved_reason,
        disp.status = 'conflict' as review_conflict
    from audit.cases c
    left join audit.rules r on r.rule_id = c.rule_id
    left join lateral (
        select v.status, v.reviewer, v.reviewed_at from review.reviews v
        where v.case_id = c.case_id order by v.review_id desc limit 1
    ) rv on true
    -- (a case without a review has no disposition: the function runs only
    -- for the few reviewed cases, not once per case)
    left join lateral (
        select review.disposition(c.case_id) as status where rv.reviewer is not null offset 0
    ) as disp on true;

create or replace view report.reviews as
    select review_id, case_id, status, note, reviewer, reviewed_at, recorded_by, reviewer_role
    from review.reviews;

create or replace view report.measures as
    select m.measure_id, m.kind, m.period, m.site_id, nullif(m.prescriber_id, '') as prescriber_id,
           m.denominator, m.numerator, m.rate, m.ci_low, m.ci_high, m.all_sites_rate, m.outlier,
           m.numerator_after_review, m.rate_after_review
    from audit.measures m join report.latest_run l on l.run_id = m.run_id;

create or replace view report.pathway as select * from audit.pathway;

create or replace view report_shared.measures as
    select m.measure_id, m.kind, m.period, m.site_id, m.denominator, m.numerator, m.rate,
           m.ci_low, m.ci_high, m.outlier, m.suppressed, m.held
    from audit.measures_shared m join report.latest_run l on l.run_id = m.run_id;

create or replace view report_shared.rules as
    select rule_id, title, severity, guideline, report_order, matures_days from audit.rules;

grant usage on schema report to rxaudit_reader;
grant select on all tables in schema report to rxaudit_reader;
grant usage on schema report_shared to rxaudit_shared;
grant select on all tables in schema report_shared to rxaudit_shared;
grant usage on schema report, report_shared to rxaudit_loader;
grant select on all tables in schema report, report_shared to rxaudit_loader;
