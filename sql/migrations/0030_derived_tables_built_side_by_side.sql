-- 0030: a full audit builds its derived tables side by side.
--
-- A full audit's derived tables and rules are built on two connections at
-- once (audit/engine/side_by_side.py), committed one statement at a time
-- into this schema so that each connection sees what the other built; the
-- audit's own transaction then moves them into core and the run's cases into
-- audit.run_cases. Until it commits, core holds the previous audit's tables.
-- Nothing else reads this schema; what a failed build left is dropped by the
-- next one. It is created, not adopted: a schema of that name that is not
-- rxaudit's stops the upgrade rather than have its tables dropped.
create schema derive;
revoke all on schema derive from public;
alter schema derive owner to rxaudit_loader;
