-- 0018: rule measures after review, and when a rule's cases mature.
--
-- numerator_after_review: the patients of the numerator with at least one
-- counted case whose latest review (when the run computed its measures) is
-- neither false_positive nor justified; rate_after_review over the same
-- denominator. Process measures carry NULL. The shared measures do not carry
-- them: the difference of the two numerators is a count of reviews, often
-- small, that no suppression of the raw cells covers.
alter table audit.measures add column numerator_after_review integer;
alter table audit.measures add column rate_after_review numeric;

-- Each rule's place in the reports and how many days after its case date a
-- case can first be raised (rule.toml `matures_after`, read from the policy):
-- the cases of the last that many days are still maturing.
alter table audit.rules add column report_order integer not null default 0;
alter table audit.rules add column matures_days integer not null default 0;

-- The superseded versions of each record, found by its id (the workspace's
-- provenance of a case); the current ones have their key index.
create index prescriptions_superseded_idx on core.prescriptions (rx_id) where not is_current;
create index therapy_sessions_superseded_idx on core.therapy_sessions (session_id)
    where not is_current;
create index clinical_events_superseded_idx on core.clinical_events (event_id)
    where not is_current;
create index diagnoses_superseded_idx on core.diagnoses (diagnosis_id) where not is_current;
create index assessments_superseded_idx on core.assessments (assessment_id) where not is_current;
create index trial_enrollments_superseded_idx on core.trial_enrollments (enrollment_id)
    where not is_current;
