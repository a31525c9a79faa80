-- 0010: an incremental audit writes only the touched patients' cases.
--
-- Every case that is not resolved is, by construction, a finding of the
-- latest audit: a case not found again is marked resolved. Its "last seen"
-- run is therefore the latest run, and is no longer rewritten into every case
-- row by every audit (an incremental audit would otherwise rewrite all the
-- cases it did not re-evaluate). The stored column becomes the last audit
-- that re-evaluated the case's patient and found the case; the report view
-- gives last_seen_run as before.
alter table audit.cases rename column last_seen_run to last_evaluated_run;
alter table audit.cases rename constraint cases_last_seen_run_fkey
    to cases_last_evaluated_run_fkey;

create or replace view report.cases as
    select
        c.case_id, c.rule_id, r.title as rule_title, c.severity, c.status, c.patient_id,
        c.site_id, c.prescriber_id, c.case_date, c.summary, c.evidence, r.guideline,
        c.policy_version, c.first_seen_run,
        case when c.status = 'resolved' then c.last_evaluated_run
             else coalesce((select l.run_id from report.latest_run as l), c.last_evaluated_run)
        end as last_seen_run,
        c.resolved_run,
        rv.status as review_status, rv.reviewer as last_reviewer, rv.reviewed_at as last_reviewed_at
    from audit.cases c
    left join audit.rules r on r.rule_id = c.rule_id
    left join lateral (
        select v.status, v.reviewer, v.reviewed_at from audit.reviews v
        where v.case_id = c.case_id order by v.review_id desc limit 1
    ) rv on true;

-- The evidence of each case as the dashboard's timeline draws it, kept with
-- the cases (an incremental audit rebuilds the touched patients' rows), so a
-- report does not join every case back to the source tables. items: a JSON
-- array, four numbers per evidence row: kind (0 fill, drawn as its covered
-- days; 1 session; 2 event; 3 diagnosis; 4 assessment), first and last day
-- (days since 1970-01-01), and the label's idx in audit.evidence_labels.
create table audit.case_evidence (
    case_id     text primary key,
    patient_id  text not null,
    items       text not null
);
create index case_evidence_patient_idx on audit.case_evidence (patient_id);
alter table audit.case_evidence owner to rxaudit_loader;

-- The evidence labels (drug and dose, session modality, event type, code,
-- instrument and score): a dictionary that only grows, so a case's items
-- stay valid while other cases change.
create table audit.evidence_labels (
    idx    integer primary key,
    label  text not null unique
);
alter table audit.evidence_labels owner to rxaudit_loader;
