-- 0028: every distinct drug_name the loads have brought, kept as each load
-- counts its file's distinct values (audit.ingest.values), so that the
-- audit's drug map (sql/derive/drug_name_map.sql) reads a few hundred names
-- instead of scanning every prescription for them.
create table core.drug_names (drug_name text primary key);
insert into core.drug_names (drug_name)
select distinct drug_name from core.prescriptions where drug_name is not null
on conflict do nothing;
alter table core.drug_names owner to rxaudit_loader;
