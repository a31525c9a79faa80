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
    where array[c.site_id, '*'] && (select review.visible_sites())
      -- and row-level security (0019), which report.cases' owner is not under
      and exists (select 1 from audit.cases as g where g.case_id = c.case_id);

-- The same rows, narrow (no long text): what counts, the overview and the
-- worklist's paging read (the worklist then reads its page of web.cases).
create or replace view web.case_index with (security_barrier) as
    select c.case_id, c.rule_id, c.severity, c.status, c.site_id, c.prescriber_id, c.case_date,
           exists (select 1 from review.reviews as v where v.case_id = c.case_id) as reviewed,
           case when exists (select 1 from review.reviews as v where v.case_id = c.case_id)
                then review.disposition(c.case_id) end as review_status
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
    where array[p.home_site_id, '*'] && (select review.visible_sites())
      and exists (select 1 from audit.pathway as g where g.patient_id = p.patient_id);

-- Aggregates (no patient): every signed-in user sees them.
create or replace view web.measures with (security_barrier) as
    select m.* from report.measures as m where exists (select 1 from review.session_user_row());

create or replace view web.rules as select * from report_shared.rules;

-- The access log: auditors only.
create or replace view web.access_log with (security_barrier) as
    select l.log_id, l.user_name, l.at, l.what, l.object_id, l.rows, c.site_id
    from review.access_log as l
    left join audit.cases as c on c.case_id = l.object_id
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
    -- the current version by its key index, the superseded ones by theirs
    cross join lateral (
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.prescriptions as x
        where ev.tbl = 'prescriptions' and x.rx_id = ev.id and x.patient_id = ev.patient_id and x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.prescriptions as x
        where ev.tbl = 'prescriptions' and x.rx_id = ev.id and x.patient_id = ev.patient_id and not x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.therapy_sessions as x
        where ev.tbl = 'therapy_sessions' and x.session_id = ev.id and x.patient_id = ev.patient_id and x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.therapy_sessions as x
        where ev.tbl = 'therapy_sessions' and x.session_id = ev.id and x.patient_id = ev.patient_id and not x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.clinical_events as x
        where ev.tbl = 'clinical_events' and x.event_id = ev.id and x.patient_id = ev.patient_id and x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.clinical_events as x
        where ev.tbl = 'clinical_events' and x.event_id = ev.id and x.patient_id = ev.patient_id and not x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.diagnoses as x
        where ev.tbl = 'diagnoses' and x.diagnosis_id = ev.id and x.patient_id = ev.patient_id and x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.diagnoses as x
        where ev.tbl = 'diagnoses' and x.diagnosis_id = ev.id and x.patient_id = ev.patient_id and not x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.assessments as x
        where ev.tbl = 'assessments' and x.assessment_id = ev.id and x.patient_id = ev.patient_id and x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.assessments as x
        where ev.tbl = 'assessments' and x.assessment_id = ev.id and x.patient_id = ev.patient_id and not x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.trial_enrollments as x
        where ev.tbl = 'trial_enrollments' and x.enrollment_id = ev.id and x.patient_id = ev.patient_id and x.is_current
        union all
        select x.batch_no, x.line_no, x.is_current, x.superseded_by from core.trial_enrollments as x
        where ev.tbl = 'trial_enrollments' and x.enrollment_id = ev.id and x.patient_id = ev.patient_id and not x.is_current
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

-- The rule measures' numerators after review as the reviews stand now (the
-- run's own figures are those of its time): per rule, quarter and site
-- ('ALL': all sites), the patients with an open counted case (of the latest
-- run's as_of) whose latest review is neither false_positive nor justified.
-- Aggregates, like web.measures: every signed-in user sees them.
create or replace view web.rule_counts_now with (security_barrier) as
    with kept as (
        select c.rule_id, to_char(date_trunc('quarter', c.case_date), 'YYYY-"Q"Q') as period,
               c.site_id, c.patient_id,
               not exists (select 1 from review.reviews as v where v.case_id = c.case_id)
               or coalesce(review.disposition(c.case_id), '')
                   not in ('false_positive', 'justified') as kept
        from audit.cases as c
        where c.status = 'open' and c.severity <> 'info'
          and c.case_date <= (select l.as_of from report.latest_run as l)
          and exists (select 1 from review.session_user_row())
    ),
    per_patient as (
        select rule_id, period, case when grouping(site_id) = 1 then 'ALL' else site_id end
                   as site_id, patient_id, bool_or(kept) as kept
        from kept
        group by grouping sets ((rule_id, period, site_id, patient_id),
                                (rule_id, period, patient_id))
    )
    select rule_id, period, site_id, count(*)::integer as numerator,
           count(*) filter (where kept)::integer as numerator_after_review
    from per_patient
    group by rule_id, period, site_id;

-- What the overview's figures depend on (no patient): the latest run and the
-- newest review.
create or replace view web.overview_state with (security_barrier) as
    select (select l.run_id from report.latest_run as l) as run_id,
           (select l.as_of from report.latest_run as l) as as_of,
           (select max(v.review_id) from review.reviews as v) as last_review_id
    where exists (select 1 from review.session_user_row());

-- A case's evidence as its timeline draws it (the dashboard's form, kept by
-- the audit): kind (0 fill, a bar of its covered days; 1 session; 2 event;
-- 3 diagnosis; 4 assessment), first and last day, label.
create or replace view web.case_timeline with (security_barrier) as
    select e.case_id, (x.v ->> 0)::integer as kind,
           date '1970-01-01' + (x.v ->> 1)::integer as start_on,
           date '1970-01-01' + (x.v ->> 2)::integer as end_on, l.label
    from audit.case_evidence as e
    inner join audit.cases as c on c.case_id = e.case_id
    cross join lateral (
        select jsonb_build_array(a -> (4 * i), a -> (4 * i + 1), a -> (4 * i + 2), a -> (4 * i + 3))
        from (select e.items::jsonb as a) as j,
             generate_series(0, jsonb_array_length(e.items::jsonb) / 4 - 1) as i
    ) as x(v)
    inner join audit.evidence_labels as l on l.idx = (x.v ->> 3)::integer
    where array[c.site_id, '*'] && (select review.visible_sites());

-- A visible case's patient's PTSD index date and care-pathway next step (the
-- case's site decides, not the patient's home site).
create or replace view web.case_patient with (security_barrier) as
    select c.case_id, p.index_date, p.next_step, p.next_step_reason
    from audit.cases as c
    inner join audit.pathway as p on p.patient_id = c.patient_id
    where array[c.site_id, '*'] && (select review.visible_sites());

grant select on web.rule_counts_now, web.overview_state, web.case_timeline,
    web.case_patient to rxaudit_web;

-- The auditor's view of the batches (no patient): each delivery's status,
-- counts, what it replaced (per file: added, replaced, from which batches),
-- its quarantine (per file and column: rows, reason, first line), dropped
-- columns, withdrawal, and its validation results.
create or replace view web.batches with (security_barrier) as
    select b.batch_no, b.batch_id, b.source, b.schema_version, b.as_of, b.history_from,
           b.status, b.reason, b.rows_in, b.rows_loaded, b.rows_quarantined, b.replacements,
           b.replace_allowed, b.quarantine_summary, b.dropped_columns, b.age_90_plus_patients,
           b.received_at, b.finished_at, b.withdrawn_at, b.withdrawn_by, b.withdrawal_reason,
           b.withdrawal, b.cases_resolved
    from audit.batches as b
    where (select review.session_role()) = 'auditor';

create or replace view web.batch_validation with (security_barrier) as
    select b.batch_id, v.file_name, v.suite_name, v.success, v.statistics, v.engine,
           v.validated_at
    from audit.validation_results as v
    inner join audit.batches as b on b.batch_no = v.batch_no
    where (select review.session_role()) = 'auditor';

grant select on web.batches, web.batch_validation to rxaudit_web;

-- The patient-level views belong to rxaudit_web_views, under row-level
-- security (migration 0019): their own site filters and the policies both
-- hold. The aggregates stay with the upgrading role (every site's figures).
do $$
declare v text;
begin
  foreach v in array array['web.cases', 'web.case_index', 'web.reviews', 'web.assignments',
                           'web.pathway', 'web.case_sources', 'web.case_timeline',
                           'web.case_patient'] loop
    execute format('alter view %s owner to rxaudit_web_views', v);
  end loop;
end
$$;
