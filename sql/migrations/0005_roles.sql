-- 0005: least-privilege roles.
--
-- rxaudit_loader  runs the pipeline: owns and writes raw, core and audit.
-- rxaudit_reader  reads the report views only (BI tools, the QI team).
-- rxaudit_shared  reads report_shared only: suppressed aggregates, no patient.
--
-- They are group roles (NOLOGIN): grant them to login users, e.g.
--   create user metabase login password '...' in role rxaudit_reader;
-- Roles belong to the whole server; each database grants them its own rights.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'rxaudit_loader') then
    create role rxaudit_loader nologin;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'rxaudit_reader') then
    create role rxaudit_reader nologin;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'rxaudit_shared') then
    create role rxaudit_shared nologin;
  end if;
end
$$;

revoke all on schema raw, core, audit, report, report_shared from public;

-- The loader owns the data schemas and their tables, so it can add a batch's
-- partitions and rebuild the derived tables.
alter schema raw owner to rxaudit_loader;
alter schema core owner to rxaudit_loader;
alter schema audit owner to rxaudit_loader;
do $$
declare t record;
begin
  for t in
    select schemaname, tablename from pg_tables where schemaname in ('raw', 'core', 'audit')
  loop
    execute format('alter table %I.%I owner to rxaudit_loader', t.schemaname, t.tablename);
  end loop;
  for t in
    select sequence_schema as s, sequence_name as n from information_schema.sequences
    where sequence_schema in ('raw', 'core', 'audit')
  loop
    execute format('alter sequence %I.%I owner to rxaudit_loader', t.s, t.n);
  end loop;
end
$$;
grant usage on schema report, report_shared to rxaudit_loader;

grant usage on schema report to rxaudit_reader;
grant select on all tables in schema report to rxaudit_reader;

grant usage on schema report_shared to rxaudit_shared;
grant select on all tables in schema report_shared to rxaudit_shared;
grant select on all tables in schema report, report_shared to rxaudit_loader;
