-- 0007: incremental audits.
--
-- A batch records the patients it touched (its own rows' patients and the
-- patients of the versions it superseded), unless it is broad (it brought a
-- large share of a table, or changed trials, which bear on every patient):
-- then the next audit re-evaluates everyone. A run records how it evaluated
-- and up to which batch, so the next one knows what changed since.

alter table audit.batches add column touches_all boolean not null default false;

create table audit.batch_patients (
    batch_no    integer not null references audit.batches on delete cascade,
    patient_id  text not null,
    primary key (batch_no, patient_id)
);
alter table audit.batch_patients owner to rxaudit_loader;

alter table audit.runs
    add column mode text,
    add column last_batch_no integer,
    add column engine_sha256 text,
    add column touched_patients integer;
