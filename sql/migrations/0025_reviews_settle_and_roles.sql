-- 0025: a conflict is not a verdict; auditors read, reviewers and leads review.
--
-- review.disposition(case): what the reviews of a case say together. Each
-- reviewer's latest review counts; when they agree, that status. When they
-- disagree, a lead settles it by reviewing once the conflict is there (the
-- newest review is a lead's, and the reviews before it already disagreed):
-- the lead's status. Otherwise 'conflict' (a lead's disagreement with a
-- reviewer is a conflict too). NULL: not reviewed. A case leaves the
-- after-review numerator only when its disposition is false_positive or
-- justified, so an unsettled conflict still counts.
create or replace function review.disposition(p_case_id text) returns text
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  with r as (
    select review_id, reviewer, status, reviewer_role from review.reviews
    where case_id = p_case_id
  ),
  newest as (select * from r order by review_id desc limit 1),
  latest as (
    select distinct on (reviewer) reviewer, status from r order by reviewer, review_id desc
  ),
  earlier as (
    select distinct on (reviewer) reviewer, status from r
    where review_id < (select review_id from newest) order by reviewer, review_id desc
  )
  select case
    when not exists (select 1 from r) then null
    when (select count(distinct status) from latest) = 1 then (select status from newest)
    when (select reviewer_role from newest) = 'lead'
         and (select count(distinct status) from earlier) > 1 then (select status from newest)
    else 'conflict'
  end
$$;
alter function review.disposition(text) owner to rxaudit_reviews;
revoke all on function review.disposition(text) from public;
grant execute on function review.disposition(text) to rxaudit_loader, rxaudit_web,
    rxaudit_web_views, rxaudit_reader;

-- The worklist's review filter reads the disposition ('conflict' among them).
create or replace function review.worklist_condition() returns text
language sql immutable as $$
  select $q$($1 @> array['*'] or c.site_id = any($1))
     and ($2::text is null or c.rule_id = $2)
     and ($3::text is null or c.site_id = $3)
     and ($4::text is null or c.prescriber_id = $4)
     and ($5::text is null or c.severity = $5)
     and ($6::text is null or c.status = $6)
     and ($7::date is null or c.case_date >= $7)
     and ($8::date is null or c.case_date <= $8)
     and ($9::text is null or coalesce(review.disposition(c.case_id), 'none') = $9)
     and ($10::text is null or (select a.assignee from review.assignments as a
                                where a.case_id = c.case_id
                                order by a.assignment_id desc limit 1) = $10)$q$
$$;

-- Auditors read: a review is a reviewer's or a lead's.
create or replace function review.web_review(p_case_id text, p_status text, p_note text)
returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  who text;
  who_role text;
  visible text[] := review.visible_sites();
  site text;
  new_id bigint;
begin
  select user_name, role into who, who_role from review.session_user_row();
  if who is null then
    raise exception 'not signed in' using errcode = 'insufficient_privilege';
  end if;
  select site_id into site from audit.cases where case_id = p_case_id;
  if site is null or not ('*' = any(visible) or site = any(visible)) then
    raise exception 'no case %', p_case_id using errcode = 'no_data_found';
  end if;
  if who_role not in ('reviewer', 'lead') then
    -- refused, and recorded (NULL: no review; the caller says so)
    insert into review.access_log (user_name, what, object_id, rows)
    values (who, 'review refused', left(p_case_id, 200), 0);
    return null;
  end if;
  if coalesce(btrim(p_note), '') = '' then
    raise exception 'a review needs a note' using errcode = 'check_violation';
  end if;
  if length(p_note) > 4000 then
    raise exception 'a note holds at most 4000 characters' using errcode = 'check_violation';
  end if;
  insert into review.reviews (case_id, status, note, reviewer, reviewed_at, recorded_by,
                              reviewer_role)
  values (p_case_id, p_status, p_note, who, clock_timestamp(), session_user, who_role)
  returning review_id into new_id;
  return new_id;
end
$$;

-- An assignment by a lead, of a case of their sites, to a reviewer or lead
-- of the case's site (never an auditor).
create or replace function review.web_assign(p_case_id text, p_assignee text) returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  who text;
  who_role text;
  visible text[] := review.visible_sites();
  site text;
  new_id bigint;
begin
  select user_name, role into who, who_role from review.session_user_row();
  if who is null then
    raise exception 'only a signed-in lead assigns cases' using errcode = 'insufficient_privilege';
  end if;
  if who_role <> 'lead' then  -- refused, and recorded (NULL: no assignment)
    insert into review.access_log (user_name, what, object_id, rows)
    values (who, 'assignment refused', left(p_case_id, 200), 0);
    return null;
  end if;
  select site_id into site from audit.cases where case_id = p_case_id;
  if site is null or not (site = any(visible)) then
    raise exception 'no case %', p_case_id using errcode = 'no_data_found';
  end if;
  if not exists (select 1 from review.users where user_name = p_assignee and not disabled
                 and role in ('reviewer', 'lead') and site = any(sites)) then
    raise exception 'no reviewer % at this site', p_assignee using errcode = 'no_data_found';
  end if;
  insert into review.assignments (case_id, assignee, assigned_by)
  values (p_case_id, p_assignee, who) returning assignment_id into new_id;
  return new_id;
end
$$;

-- Whom a lead may assign a case to: the enabled reviewers and leads of the
-- case's site (nothing for anyone else, or for a case they cannot see).
create or replace function review.assignable(p_case_id text)
returns table (user_name text, role text)
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select u.user_name, u.role from review.users as u
  where (select s.role from review.session_user_row() as s) = 'lead'
    and not u.disabled and u.role in ('reviewer', 'lead')
    and (select c.site_id from audit.cases as c where c.case_id = p_case_id) = any(u.sites)
    and (select c.site_id from audit.cases as c where c.case_id = p_case_id)
        = any(review.visible_sites())
  order by u.user_name
$$;

do $$
declare f text;
begin
  foreach f in array array['review.worklist_condition()',
                           'review.web_review(text, text, text)',
                           'review.web_assign(text, text)',
                           'review.assignable(text)'] loop
    execute format('alter function %s owner to rxaudit_reviews', f);
    execute format('revoke all on function %s from public', f);
  end loop;
end
$$;
grant execute on function review.web_review(text, text, text), review.web_assign(text, text),
    review.assignable(text) to rxaudit_web;
