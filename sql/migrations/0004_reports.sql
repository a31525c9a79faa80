-- 0004: case lifecycle, reviews, measures, and the report views.

-- Lifecycle: the run in which a case was last resolved (NULL while it holds).
alter table audit.cases add column resolved_run text references audit.runs;

-- The catalogue's rules as the last run used them (for reports and BI views).
create table audit.rules (
    rule_id     text primary key,
    title       text not null,
    severity    text not null,
    guideline   text not null,
    parameters  jsonb not null
);

-- Reviews: append-only and attributed. Nothing updates or deletes a review.
create table audit.reviews (
    review_id   bigint generated always as identity primary key,
    case_id     text not null references audit.cases,
    status      text not null check (status in ('confirmed', 'justified', 'false_positive', 'reopened')),
    note        text not null,
    reviewer    text not null,
    reviewed_at timestamptz not null default clock_timestamp()
);
create index reviews_case_idx on audit.reviews (case_id, review_id);

create or replace function audit.refuse_change() returns trigger
language plpgsql as $$
begin
  raise exception '% is append-only', tg_table_schema || '.' || tg_table_name;
end
$$;

create trigger reviews_append_only before update or delete on audit.reviews
    for each row execute function audit.refuse_change();
create trigger reviews_no_truncate before truncate on audit.reviews
    for each statement execute function audit.refuse_change();

-- Measures of each run. kind = 'rule' (a rule's rate) or 'process' (a
-- positive process measure). site_id 'ALL' and prescriber_id '' mark totals.
create table audit.measures (
    run_id          text not null references audit.runs on delete cascade,
    measure_id      text not null,
    kind            text not null,
    period          text not null,
    site_id         text not null,
    prescriber_id   text not null default '',
    denominator     integer not null,
    numerator       integer not null,
    rate            numeric,
    ci_low          numeric,
    ci_high         numeric,
    all_sites_rate  numeric,
    outlier         boolean not null default false,
    primary key (run_id, measure_id, period, site_id, prescriber_id)
);

-- The same, safe to share: small cells suppressed (NULL), see audit/measures.py.
create table audit.measures_shared (
    run_id          text not null references audit.runs on delete cascade,
    measure_id      text not null,
    kind            text not null,
    period          text not null,
    site_id         text not null,
    denominator     integer,
    numerator       integer,
    rate            numeric,
    ci_low          numeric,
    ci_high         numeric,
    outlier         boolean,
    suppressed      boolean not null,
    primary key (run_id, measure_id, period, site_id)
);

-- Report views for dashboards and BI tools ---------------------------------

create schema if not exists report;
create schema if not exists report_shared;

create view report.latest_run as
    select r.run_id, r.as_of, r.policy_version, r.policy_sha256, r.finished_at
    from audit.runs r
    where r.status in ('ok', 'rejected')
    order by r.finished_at desc nulls last, r.run_id desc
    limit 1;

create view report.cases as
    select
        c.case_id, c.rule_id, r.title as rule_title, c.severity, c.status, c.patient_id,
        c.site_id, c.prescriber_id, c.case_date, c.summary, c.evidence, r.guideline,
        c.policy_version, c.first_seen_run, c.last_seen_run, c.resolved_run,
        rv.status as review_status, rv.reviewer as last_reviewer, rv.reviewed_at as last_reviewed_at
    from audit.cases c
    left join audit.rules r on r.rule_id = c.rule_id
    left join lateral (
        select v.status, v.reviewer, v.reviewed_at from audit.reviews v
        where v.case_id = c.case_id order by v.review_id desc limit 1
    ) rv on true;

create view report.reviews as
    select review_id, case_id, status, note, reviewer, reviewed_at from audit.reviews;

create view report.measures as
    select m.measure_id, m.kind, m.period, m.site_id, nullif(m.prescriber_id, '') as prescriber_id,
           m.denominator, m.numerator, m.rate, m.ci_low, m.ci_high, m.all_sites_rate, m.outlier
    from audit.measures m join report.latest_run l on l.run_id = m.run_id;

create view report_shared.measures as
    select m.measure_id, m.kind, m.period, m.site_id, m.denominator, m.numerator, m.rate,
           m.ci_low, m.ci_high, m.outlier, m.suppressed
    from audit.measures_shared m join report.latest_run l on l.run_id = m.run_id;

create view report_shared.rules as
    select rule_id, title, severity, guideline from audit.rules;

-- The care pathway of the latest audit, kept in a stable table so that views
-- can read it (core.care_pathway is rebuilt by each audit).
create table audit.pathway (
    patient_id                      text primary key,
    home_site_id                    text,
    index_date                      date,
    tf_sessions                     integer,
    best_course_sessions            integer,
    tf_course_reached_min           boolean,
    ongoing_course_sessions         integer,
    first_line_ingredient           text,
    first_line_start                date,
    first_line_acute_covered_days   integer,
    first_line_adequate             boolean,
    first_line_ongoing              boolean,
    first_line_effective_dose       boolean,
    first_line_known_dose           boolean,
    nightmares_on                   date,
    prazosin_tried                  boolean,
    venlafaxine_after_ssri          boolean,
    benzodiazepine_active           boolean,
    treatment_resistant_on          date,
    first_mdma_on                   date,
    mdma_off_trial                  boolean,
    last_remission                  date,
    next_step                       text not null
);

create view report.pathway as select * from audit.pathway;

-- The 95% Wilson score interval of a proportion.
create or replace function audit.wilson_low(k integer, n integer) returns numeric
language sql immutable parallel safe as $$
  select case when n > 0 then greatest(0, (
    (k::numeric / n + 1.9208 / n)
    - 1.96 * sqrt((k::numeric / n) * (1 - k::numeric / n) / n + 0.9604 / (n::numeric * n))
  ) / (1 + 3.8416 / n)) end
$$;

create or replace function audit.wilson_high(k integer, n integer) returns numeric
language sql immutable parallel safe as $$
  select case when n > 0 then least(1, (
    (k::numeric / n + 1.9208 / n)
    + 1.96 * sqrt((k::numeric / n) * (1 - k::numeric / n) / n + 0.9604 / (n::numeric * n))
  ) / (1 + 3.8416 / n)) end
$$;

-- A text cell a spreadsheet would run as a formula gets a leading quote.
create or replace function audit.csv_safe(t text) returns text
language sql immutable parallel safe as $$
  select case when left(t, 1) in ('=', '+', '-', '@', chr(9), chr(13)) then '''' || t else t end
$$;
