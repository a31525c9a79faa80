-- 0013: record identity is per source.
--
-- A record's key is its id within the manifest's `source`: two sources that
-- both send rx-1 hold two records, and a correction replaces only a record of
-- its own source. Patients stay one identity across sources (the health
-- system's pseudonymous token): a patient row from a second source is kept
-- beside the first. The trial registry (trials.csv) stays one registry: NCT
-- ids are the same everywhere. A batch without a source is source ''.
do $$
declare t text;
begin
    foreach t in array array['patients', 'diagnoses', 'prescriptions', 'therapy_sessions',
                             'trial_enrollments', 'clinical_events', 'assessments'] loop
        execute format('alter table core.%I add column source text collate "C" not null default %L',
                       t, '');
        execute format('update core.%I as c set source = b.source from audit.batches as b'
                       ' where b.batch_no = c.batch_no and coalesce(b.source, %L) <> %L',
                       t, '', '');
    end loop;
end $$;

drop index core.patients_key_idx;
drop index core.diagnoses_key_idx;
drop index core.prescriptions_key_idx;
drop index core.therapy_sessions_key_idx;
drop index core.trial_enrollments_key_idx;
drop index core.clinical_events_key_idx;
drop index core.assessments_key_idx;
create unique index patients_key_idx on core.patients (patient_id, source) where is_current;
create unique index diagnoses_key_idx on core.diagnoses (diagnosis_id, source) where is_current;
create unique index prescriptions_key_idx on core.prescriptions (rx_id, source) where is_current;
create unique index therapy_sessions_key_idx on core.therapy_sessions (session_id, source)
    where is_current;
create unique index trial_enrollments_key_idx on core.trial_enrollments (enrollment_id, source)
    where is_current;
create unique index clinical_events_key_idx on core.clinical_events (event_id, source)
    where is_current;
create unique index assessments_key_idx on core.assessments (assessment_id, source)
    where is_current;

-- The replacement log: per file, the records a batch added and the records of
-- earlier batches it replaced (by batch), as
-- [{"file": ..., "added": n, "replaced": n, "from": {"<batch_id>": n}}].
alter table audit.batches add column replacements jsonb not null default '[]';
-- Whether an operator let a mass replacement through (--allow-replace).
alter table audit.batches add column replace_allowed boolean not null default false;
-- The cases the audit after the batch resolved whose patients it touched.
alter table audit.batches add column cases_resolved integer;

-- The hash of the functions and views an upgrade last re-created (sql/functions,
-- sql/views): a session whose code differs upgrades them.
create table audit.schema_code (sha256 text not null);
alter table audit.schema_code owner to rxaudit_loader;
