-- 0003: current records by patient, for the rules' per-patient look-ups
-- (exclusion diagnoses, remission events and scores, enrollments).
create index diagnoses_patient_idx on core.diagnoses (patient_id) where is_current;
create index clinical_events_patient_idx on core.clinical_events (patient_id) where is_current;
create index assessments_patient_idx on core.assessments (patient_id) where is_current;
create index trial_enrollments_patient_idx on core.trial_enrollments (patient_id) where is_current;
