-- 0020: schema 1.2 and policy 2027.2.
--
-- Schema 1.2: a patients.csv row may give the first date that patient's
-- records are complete from (history_from: an OMOP observation period's
-- start, a health plan enrolment); it is the patient's own history start
-- when later than the load's.
alter table raw.patients add column history_from text;
alter table core.patients add column history_from date;

-- The care pathway gives the facts that chose each next step.
alter table audit.pathway add column next_step_reason text;

-- What an audit read as fills among `ordered` rows (policy key
-- orders_as_fills: auto, always, never) and, for auto, the batches whose
-- orders it counted (those of sources that delivered no dispensing).
alter table audit.runs add column orders_as_fills text;
alter table audit.runs add column order_fill_batches integer[];
-- The report views (report.pathway gains next_step_reason) are re-created
-- from sql/views/ after every upgrade.
