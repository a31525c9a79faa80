-- 0027: the records a converted batch holds dated after the patient's
-- recorded death (FHIR Patient.deceasedDateTime), per file: how many and
-- their first lines, from the conversion's mapping report. Counts and line
-- numbers only; the data-quality report lists them.
alter table audit.batches add column after_death jsonb;
