-- 0023: what auditors read is not the pipeline's to redefine.
--
-- The pipeline's role owned schema `audit`, and a schema's owner may drop
-- any object in it: the loader could replace the view audit.access_log
-- (owned by rxaudit_reviews) with one that hides a user. The schema now
-- belongs to the role that runs the upgrades (the database's owner or a
-- superuser); the loader keeps its tables there and may create new ones,
-- but drops or replaces only what it owns. When the upgrade itself runs as
-- the pipeline's role the schema stays its own (docs/security.md says to
-- run upgrades as the owner).
do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user)
     or not pg_has_role(current_user, 'rxaudit_loader', 'member') then
    execute format('alter schema audit owner to %I', current_user);
    grant usage, create on schema audit to rxaudit_loader;
  else
    raise notice 'schema audit stays with the pipeline''s role: run rxaudit db upgrade as the database owner';
  end if;
end
$$;
