-- 0029: the delivered files are compressed by the load, not by PostgreSQL.
--
-- The load compresses each file's chunks with zlib (level 1) in a thread of
-- its own while the same bytes stream into the stage, so PostgreSQL no
-- longer compresses them inside the load's transaction (`zlib` true). The
-- chunks are then stored as they come (storage external: no second
-- compression is tried). Chunks stored before this migration keep their
-- bytes as they arrived (`zlib` false); `audit.originals` reads both.
alter table audit.delivered_files add column zlib boolean not null default false;
alter table audit.delivered_files alter column bytes set storage external;
