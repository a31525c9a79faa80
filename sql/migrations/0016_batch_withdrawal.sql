-- 0016: an operator may withdraw a loaded batch.
--
-- Its records leave core (the versions it replaced are current again), a
-- full audit follows, raw keeps every row, and the withdrawal is logged and
-- attributed here and in audit.deliveries.

alter table audit.batches drop constraint batches_status_check;
alter table audit.batches add constraint batches_status_check
    check (status in ('loading', 'loaded', 'rejected', 'withdrawn'));
alter table audit.batches add column withdrawn_at timestamptz;
alter table audit.batches add column withdrawn_by text;
alter table audit.batches add column withdrawn_db_user text;
alter table audit.batches add column withdrawal_reason text;
-- what the withdrawal did, per file: records removed from core, earlier
-- versions made current again
alter table audit.batches add column withdrawal jsonb;

alter table audit.deliveries drop constraint deliveries_outcome_check;
alter table audit.deliveries add constraint deliveries_outcome_check
    check (outcome in ('loaded', 'duplicate', 'rejected', 'withdrawn'));
