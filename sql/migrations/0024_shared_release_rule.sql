-- 0024: a shared line held at its last release (audit.releases): no two
-- releases of a shared cell differ by 1 to 10.
alter table audit.measures_shared add column held boolean not null default false;
