-- 0031: how long each step of a full audit took, so that the next full
-- audit starts the longest chains of its side-by-side build first
-- (audit/engine/side_by_side.py). Only the order of the steps depends on it,
-- never what they build.
alter table audit.runs add column step_seconds jsonb;
