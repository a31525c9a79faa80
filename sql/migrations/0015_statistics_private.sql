-- 0015: no row count of a patient table through the catalogue.
--
-- PostgreSQL lets every role read each table's statistics: live and dead
-- row counts (pg_stat_user_tables and the other pg_stat_* and pg_statio_*
-- views, the pg_stat_get_* functions behind them), the planner's estimate
-- (pg_class.reltuples, relpages) and sizes on disk (pg_relation_size and its
-- kin). For the shared role, whose outputs are suppressed aggregates, those
-- are counts of patients, fills and sessions by another route. In this
-- database only the pipeline (which plans loads from them) and superusers
-- read them now; every other role keeps the rest of pg_class (names, kinds,
-- owners) that tools need to list what they may read.

do $$
declare
  r record;
  cols text;
begin
  for r in
    select c.relname from pg_class c
    where c.relnamespace = 'pg_catalog'::regnamespace and c.relkind = 'v'
      and (c.relname like 'pg\_stat\_%' or c.relname like 'pg\_statio\_%')
      and c.relname not in ('pg_stat_activity', 'pg_stats', 'pg_stats_ext', 'pg_stats_ext_exprs')
  loop
    execute format('revoke select on pg_catalog.%I from public', r.relname);
    execute format('grant select on pg_catalog.%I to rxaudit_loader', r.relname);
  end loop;

  for r in
    select p.oid::regprocedure as sig from pg_proc p
    where p.pronamespace = 'pg_catalog'::regnamespace
      and (p.proname like 'pg\_stat\_get\_%'
           or p.proname in ('pg_relation_size', 'pg_total_relation_size', 'pg_table_size',
                            'pg_indexes_size', 'pg_database_size'))
      and p.proname not like 'pg\_stat\_get\_activity%'
      and p.proname not like 'pg\_stat\_get\_backend%'
  loop
    execute format('revoke execute on function %s from public', r.sig);
    execute format('grant execute on function %s to rxaudit_loader', r.sig);
  end loop;

  select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into cols
  from pg_attribute a
  where a.attrelid = 'pg_catalog.pg_class'::regclass and a.attnum > 0 and not a.attisdropped
    and a.attname not in ('reltuples', 'relpages', 'relallvisible', 'relallfrozen');
  revoke select on pg_catalog.pg_class from public;
  execute format('grant select (%s) on pg_catalog.pg_class to public', cols);
  grant select on pg_catalog.pg_class to rxaudit_loader;
end
$$;
