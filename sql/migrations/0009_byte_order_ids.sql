-- 0009: identifiers compare byte by byte (collation "C").
--
-- Ids are ASCII codes (A-Z a-z 0-9 . _ -): a linguistic collation gives them
-- no better order, and sorting text under it (every index build, every
-- grouping, window and distinct count on an id) costs about three times a
-- byte comparison. The derived tables inherit the collation from these
-- columns. Equality is unchanged.
alter table core.patients
    alter column patient_id type text collate "C",
    alter column site_id type text collate "C";
alter table core.diagnoses
    alter column diagnosis_id type text collate "C",
    alter column patient_id type text collate "C";
alter table core.prescriptions
    alter column rx_id type text collate "C",
    alter column patient_id type text collate "C",
    alter column prescriber_id type text collate "C",
    alter column site_id type text collate "C";
alter table core.therapy_sessions
    alter column session_id type text collate "C",
    alter column patient_id type text collate "C",
    alter column clinician_id type text collate "C",
    alter column site_id type text collate "C";
alter table core.trial_enrollments
    alter column enrollment_id type text collate "C",
    alter column patient_id type text collate "C",
    alter column trial_id type text collate "C";
alter table core.trials
    alter column trial_id type text collate "C";
alter table core.clinical_events
    alter column event_id type text collate "C",
    alter column patient_id type text collate "C";
alter table core.assessments
    alter column assessment_id type text collate "C",
    alter column patient_id type text collate "C";
alter table audit.batch_patients
    alter column patient_id type text collate "C";

-- The raw partitions' ids too (the checks group and sort by them).
alter table raw.patients
    alter column patient_id type text collate "C",
    alter column site_id type text collate "C";
alter table raw.diagnoses
    alter column diagnosis_id type text collate "C",
    alter column patient_id type text collate "C";
alter table raw.prescriptions
    alter column rx_id type text collate "C",
    alter column patient_id type text collate "C",
    alter column prescriber_id type text collate "C",
    alter column site_id type text collate "C";
alter table raw.therapy_sessions
    alter column session_id type text collate "C",
    alter column patient_id type text collate "C",
    alter column clinician_id type text collate "C",
    alter column site_id type text collate "C";
alter table raw.trial_enrollments
    alter column enrollment_id type text collate "C",
    alter column patient_id type text collate "C",
    alter column trial_id type text collate "C";
alter table raw.trials
    alter column trial_id type text collate "C";
alter table raw.clinical_events
    alter column event_id type text collate "C",
    alter column patient_id type text collate "C";
alter table raw.assessments
    alter column assessment_id type text collate "C",
    alter column patient_id type text collate "C";

-- Changing a column's type drops its statistics: gather them again.
analyze core.patients, core.diagnoses, core.prescriptions, core.therapy_sessions,
    core.trial_enrollments, core.trials, core.clinical_events, core.assessments;
