-- Loading speed: core rows no longer carry a foreign key to audit.batches.
-- Only the loader writes core, always with the batch_no it registered in the
-- same transaction, so the key cannot dangle; the per-row trigger the foreign
-- key fired cost about as much as writing the row itself.
alter table core.patients drop constraint if exists patients_batch_no_fkey;
alter table core.diagnoses drop constraint if exists diagnoses_batch_no_fkey;
alter table core.prescriptions drop constraint if exists prescriptions_batch_no_fkey;
alter table core.therapy_sessions drop constraint if exists therapy_sessions_batch_no_fkey;
alter table core.trial_enrollments drop constraint if exists trial_enrollments_batch_no_fkey;
alter table core.trials drop constraint if exists trials_batch_no_fkey;
alter table core.clinical_events drop constraint if exists clinical_events_batch_no_fkey;
alter table core.assessments drop constraint if exists assessments_batch_no_fkey;
