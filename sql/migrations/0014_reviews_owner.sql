-- 0014: reviews owned by a role that neither the pipeline nor a reader holds.
--
-- The pipeline role (rxaudit_loader) owns the audit schema, and a schema's
-- owner may drop or alter any table in it: as long as reviews lived there,
-- the pipeline could disable their append-only trigger, erase them, or
-- insert one under any name and date. Reviews now live in the schema
-- `review`, owned by rxaudit_reviews (NOLOGIN; nobody is granted it). Every
-- other role writes a review only through review.add_review, a SECURITY
-- DEFINER function that stamps the time and the database user who recorded
-- it; none can update, delete, truncate, alter or back-date one.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'rxaudit_reviews') then
    create role rxaudit_reviews nologin;
  end if;
end
$$;

create schema review authorization rxaudit_reviews;
revoke all on schema review from public;
grant usage on schema review to rxaudit_loader, rxaudit_reader;

alter table audit.reviews set schema review;
alter table review.reviews owner to rxaudit_reviews;
-- the database user who recorded the review (the reviewer is who it names)
alter table review.reviews add column recorded_by text not null default session_user;

-- The append-only trigger runs a function of the reviews' owner: the
-- pipeline cannot replace it with one that lets a change through.
create function review.refuse_change() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
  raise exception '% is append-only', tg_table_schema || '.' || tg_table_name;
end
$$;
alter function review.refuse_change() owner to rxaudit_reviews;
drop trigger reviews_append_only on review.reviews;
drop trigger reviews_no_truncate on review.reviews;
create trigger reviews_append_only before update or delete on review.reviews
    for each row execute function review.refuse_change();
create trigger reviews_no_truncate before truncate on review.reviews
    for each statement execute function review.refuse_change();

grant usage on schema audit to rxaudit_reviews;
grant select, references on audit.cases to rxaudit_reviews;
grant select on review.reviews to rxaudit_loader;

create function review.add_review(
    p_case_id text, p_status text, p_note text, p_reviewer text
) returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  new_id bigint;
begin
  if not exists (select 1 from audit.cases where case_id = p_case_id) then
    raise exception 'no case %', p_case_id using errcode = 'no_data_found';
  end if;
  if coalesce(btrim(p_note), '') = '' or coalesce(btrim(p_reviewer), '') = '' then
    raise exception 'a review needs a note and a reviewer' using errcode = 'check_violation';
  end if;
  insert into review.reviews (case_id, status, note, reviewer, reviewed_at, recorded_by)
  values (p_case_id, p_status, p_note, p_reviewer, clock_timestamp(), session_user)
  returning review_id into new_id;
  return new_id;
end
$$;
alter function review.add_review(text, text, text, text) owner to rxaudit_reviews;
revoke all on function review.add_review(text, text, text, text) from public;
grant execute on function review.add_review(text, text, text, text) to rxaudit_loader, rxaudit_reader;
