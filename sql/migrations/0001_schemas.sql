-- 0001: the raw, core and audit schemas.
--
-- raw   what arrived, row for row, partitioned by batch (one partition per
--       batch and file), every value as text, with its CSV line number.
-- core  typed records; every version of a record is kept, the current one has
--       is_current = true. Derived tables (trials, courses) come later.
-- audit batches, their files, quarantined rows, validation results, runs.

create schema if not exists raw;
create schema if not exists core;
create schema if not exists audit;

-- Helpers -------------------------------------------------------------------

-- True when v is an ISO date (YYYY-MM-DD) of years 1900-2099 that exists in
-- the calendar. Written without regular expressions (translate and substr
-- are much cheaper per row); CASE keeps the casts behind the shape test.
create or replace function audit.is_calendar_date(v text) returns boolean
language sql immutable parallel safe as $$
  select case
    when length(v) = 10
     and translate(v, '0123456789', '') = '--'
     and substr(v, 5, 1) = '-' and substr(v, 8, 1) = '-'
    then case
      when substr(v, 1, 4)::int between 1900 and 2099
       and substr(v, 6, 2)::int between 1 and 12
      then substr(v, 9, 2)::int between 1 and extract(day from (
             make_date(substr(v, 1, 4)::int, substr(v, 6, 2)::int, 1)
             + interval '1 month - 1 day'))::int
      else false
    end
    else false
  end
$$;

-- The line number of the row being copied: the loader resets the sequence to
-- 1 (the header line) before each file, under the loader's advisory lock.
create sequence raw.line_no_seq;

-- Audit ---------------------------------------------------------------------

create table audit.batches (
    batch_no            integer generated always as identity primary key,
    batch_id            text not null unique,
    source              text,
    schema_version      text not null,
    as_of               date not null,
    created_at          timestamptz,
    content_sha256      text not null,
    manifest            jsonb not null,
    status              text not null check (status in ('loading', 'loaded', 'rejected')),
    reason              text,
    rows_in             bigint not null default 0,
    rows_loaded         bigint not null default 0,
    rows_quarantined    bigint not null default 0,
    dropped_columns     jsonb not null default '[]',
    age_90_plus_patients bigint not null default 0,
    quarantine_summary  jsonb not null default '[]',
    timings             jsonb not null default '{}',
    received_at         timestamptz not null default now(),
    finished_at         timestamptz
);

-- Every delivery attempt, including no-op re-deliveries and rejections.
create table audit.deliveries (
    delivery_no     bigint generated always as identity primary key,
    batch_id        text not null,
    content_sha256  text,
    outcome         text not null check (outcome in ('loaded', 'duplicate', 'rejected')),
    reason          text,
    delivered_at    timestamptz not null default now()
);

create table audit.batch_files (
    batch_no        integer not null references audit.batches on delete cascade,
    file_name       text not null,
    sha256          text not null,
    rows            bigint not null,
    primary key (batch_no, file_name)
);

create table audit.quarantine (
    batch_no        integer not null references audit.batches on delete cascade,
    file_name       text not null,
    line_no         bigint not null,
    column_name     text not null,
    reason          text not null
);
create index quarantine_row_idx on audit.quarantine (batch_no, file_name, line_no);

create table audit.validation_results (
    batch_no        integer not null references audit.batches on delete cascade,
    file_name       text not null,
    suite_name      text not null,
    success         boolean not null,
    statistics      jsonb not null,
    results         jsonb not null,
    engine          text not null,
    validated_at    timestamptz not null default now(),
    primary key (batch_no, file_name)
);

create table audit.runs (
    run_id          text primary key,
    started_at      timestamptz not null,
    finished_at     timestamptz,
    as_of           date,
    status          text not null,
    summary         jsonb not null default '{}'
);

-- Raw: partitioned by batch_no; the loader adds one partition per batch -----

create table raw.patients (
    batch_no integer not null default current_setting('rxaudit.batch_no')::integer,
    line_no bigint not null default nextval('raw.line_no_seq'),
    patient_id text, birth_year text, sex text, site_id text
) partition by list (batch_no);

create table raw.diagnoses (
    batch_no integer not null default current_setting('rxaudit.batch_no')::integer,
    line_no bigint not null default nextval('raw.line_no_seq'),
    diagnosis_id text, patient_id text, code_system text, code text, diagnosed_on text
) partition by list (batch_no);

create table raw.prescriptions (
    batch_no integer not null default current_setting('rxaudit.batch_no')::integer,
    line_no bigint not null default nextval('raw.line_no_seq'),
    rx_id text, patient_id text, prescriber_id text, site_id text,
    drug_code_system text, drug_code text, drug_name text, strength_mg text,
    quantity text, days_supply text, daily_dose_mg text, filled_on text, setting text
) partition by list (batch_no);

create table raw.therapy_sessions (
    batch_no integer not null default current_setting('rxaudit.batch_no')::integer,
    line_no bigint not null default nextval('raw.line_no_seq'),
    session_id text, patient_id text, clinician_id text, site_id text,
    session_date text, cpt_code text, modality text, minutes text
) partition by list (batch_no);

create table raw.trial_enrollments (
    batch_no integer not null default current_setting('rxaudit.batch_no')::integer,
    line_no bigint not null default nextval('raw.line_no_seq'),
    enrollment_id text, patient_id text, trial_id text, enrolled_on text, ended_on text
) partition by list (batch_no);

create table raw.trials (
    batch_no integer not null default current_setting('rxaudit.batch_no')::integer,
    line_no bigint not null default nextval('raw.line_no_seq'),
    trial_id text, title text, approved text
) partition by list (batch_no);

create table raw.clinical_events (
    batch_no integer not null default current_setting('rxaudit.batch_no')::integer,
    line_no bigint not null default nextval('raw.line_no_seq'),
    event_id text, patient_id text, event_date text, event_type text
) partition by list (batch_no);

create table raw.assessments (
    batch_no integer not null default current_setting('rxaudit.batch_no')::integer,
    line_no bigint not null default nextval('raw.line_no_seq'),
    assessment_id text, patient_id text, assessed_on text, instrument text, score text
) partition by list (batch_no);

-- Core: typed, every version kept ------------------------------------------

create table core.patients (
    batch_no integer not null references audit.batches, line_no bigint not null,
    is_current boolean not null default true, superseded_by integer,
    patient_id text not null, birth_year integer, age_90_plus boolean not null default false,
    sex text, site_id text not null
);

create table core.diagnoses (
    batch_no integer not null references audit.batches, line_no bigint not null,
    is_current boolean not null default true, superseded_by integer,
    diagnosis_id text not null, patient_id text not null, code_system text not null,
    code text not null, diagnosed_on date not null
);

create table core.prescriptions (
    batch_no integer not null references audit.batches, line_no bigint not null,
    is_current boolean not null default true, superseded_by integer,
    rx_id text not null, patient_id text not null, prescriber_id text, site_id text not null,
    drug_code_system text not null, drug_code text, drug_name text not null,
    strength_mg numeric, quantity numeric, days_supply integer not null,
    daily_dose_mg numeric, filled_on date not null, setting text not null
);

create table core.therapy_sessions (
    batch_no integer not null references audit.batches, line_no bigint not null,
    is_current boolean not null default true, superseded_by integer,
    session_id text not null, patient_id text not null, clinician_id text, site_id text not null,
    session_date date not null, cpt_code text, modality text not null, minutes integer
);

create table core.trial_enrollments (
    batch_no integer not null references audit.batches, line_no bigint not null,
    is_current boolean not null default true, superseded_by integer,
    enrollment_id text not null, patient_id text not null, trial_id text not null,
    enrolled_on date not null, ended_on date
);

create table core.trials (
    batch_no integer not null references audit.batches, line_no bigint not null,
    is_current boolean not null default true, superseded_by integer,
    trial_id text not null, title text, approved boolean not null
);

create table core.clinical_events (
    batch_no integer not null references audit.batches, line_no bigint not null,
    is_current boolean not null default true, superseded_by integer,
    event_id text not null, patient_id text not null, event_date date not null,
    event_type text not null
);

create table core.assessments (
    batch_no integer not null references audit.batches, line_no bigint not null,
    is_current boolean not null default true, superseded_by integer,
    assessment_id text not null, patient_id text not null, assessed_on date not null,
    instrument text not null, score integer not null
);

-- One current version per key (the loader supersedes before it inserts).
create unique index patients_key_idx on core.patients (patient_id) where is_current;
create unique index diagnoses_key_idx on core.diagnoses (diagnosis_id) where is_current;
create unique index prescriptions_key_idx on core.prescriptions (rx_id) where is_current;
create unique index therapy_sessions_key_idx on core.therapy_sessions (session_id) where is_current;
create unique index trial_enrollments_key_idx on core.trial_enrollments (enrollment_id) where is_current;
create unique index trials_key_idx on core.trials (trial_id) where is_current;
create unique index clinical_events_key_idx on core.clinical_events (event_id) where is_current;
create unique index assessments_key_idx on core.assessments (assessment_id) where is_current;
