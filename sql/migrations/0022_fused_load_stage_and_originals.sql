-- 0022: what arrived is kept as it arrived, not as a logged row table.
--
-- The row-per-line `raw` partitions go. A batch's files stream into
-- unlogged tables of schema `stage` that live only during the load (they
-- are created and dropped in its transaction), and each delivered file's
-- bytes are kept in audit.delivered_files, in chunks compressed by
-- PostgreSQL, beside its SHA-256 in audit.batch_files: an auditor can prove
-- what a batch held and re-extract any line (`rxaudit batch original`).
-- core and audit.quarantine rows keep batch, file and line as before.
--
-- Batches loaded before this migration keep their SHA-256 and row counts;
-- their rows as text are not kept (they were in `raw`).
--
-- The stored files hold what arrived, birth years of patients 90+ included
-- (the load keeps none in core): only the pipeline's role, which received
-- the original, may read them (docs/security.md).

drop schema if exists raw cascade;

create schema if not exists stage;
revoke all on schema stage from public;
alter schema stage owner to rxaudit_loader;
create sequence stage.line_no_seq cache 10000;
alter sequence stage.line_no_seq owner to rxaudit_loader;

create table audit.delivered_files (
    batch_no  integer not null references audit.batches (batch_no) on delete cascade,
    file_name text not null,
    chunk_no  integer not null,
    bytes     bytea not null,
    primary key (batch_no, file_name, chunk_no)
);
alter table audit.delivered_files owner to rxaudit_loader;
revoke all on audit.delivered_files from public;
do $$
begin
  -- lz4 where the server has it (much faster than pglz for the same files)
  alter table audit.delivered_files alter column bytes set compression lz4;
exception when feature_not_supported or invalid_parameter_value then
  null;
end
$$;
