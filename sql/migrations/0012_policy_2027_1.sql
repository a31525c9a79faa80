-- 0012: schema 1.1 and policy 2027.1.
--
-- Schema 1.1: a prescription row may say what it records (source_type:
-- dispensed, administered, ordered, reported; empty = dispensed), and a
-- manifest may give the first date its extract covers (history_from).
alter table raw.prescriptions add column source_type text;
alter table core.prescriptions add column source_type text;
alter table audit.batches add column history_from date;

-- The history start an audit used (rules.md, "History start"): an audit
-- whose history start moved re-evaluates everyone.
alter table audit.runs add column history_start date;

-- Severity info: listed and reviewable, never counted.
alter table audit.run_cases drop constraint run_cases_severity_check;
alter table audit.run_cases add constraint run_cases_severity_check
    check (severity in ('info', 'low', 'medium', 'high', 'critical'));

-- Why a case was resolved: 'data corrected' (the facts changed), or
-- 'policy <version>' (the run's policy no longer finds it).
alter table audit.cases add column resolved_reason text;
update audit.cases set resolved_reason = 'data corrected' where status = 'resolved';

-- The care pathway of 2027.1 (its ordered next steps read more of the record).
drop view report.pathway;
drop table audit.pathway;
create table audit.pathway (
    patient_id                  text primary key,
    home_site_id                text,
    index_date                  date,
    tf_sessions                 integer,
    best_course_sessions        integer,
    best_course_minimum         integer,
    tf_course_adequate          boolean,
    tf_course_ongoing           boolean,
    first_line_ingredient       text,
    first_line_start            date,
    first_line_adequate         boolean,
    first_line_ongoing          boolean,
    first_line_dose_mg          numeric,
    current_antidepressant      text,
    current_dose_mg             numeric,
    nightmares_on               date,
    prazosin_tried              boolean,
    irt_tried                   boolean,
    benzodiazepine_active       boolean,
    last_response_on            date,
    treatment_resistant_on      date,
    referral_on                 date,
    first_mdma_on               date,
    mdma_off_trial              boolean,
    hospice_on                  date,
    next_step                   text not null
);
alter table audit.pathway owner to rxaudit_loader;
create view report.pathway as select * from audit.pathway;
-- The report views (report.cases gains resolved_reason) are re-created from
-- sql/views/ after every upgrade.
