-- 0017: the workspace's access model, enforced in PostgreSQL.
--
-- The web process connects as a member of rxaudit_web. That role reads only
-- the views of the schema `web` and writes only through functions of the
-- schema `review` (owned by rxaudit_reviews, which nobody holds): reviews,
-- assignments and the access log, each stamped with the signed-in user of
-- the request's session. A request names its session by setting
-- `rxaudit.session` to the session's token (set_config(..., true)); the web
-- views show only the patient-level rows of that user's sites (an auditor's:
-- every site), so a filter forgotten in application code cannot show another
-- site's patients, and a request without a live session sees none.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'rxaudit_web') then
    create role rxaudit_web nologin;
  end if;
end
$$;

create schema web;
revoke all on schema web from public;
grant usage on schema web to rxaudit_web;
grant usage on schema review to rxaudit_web;

-- The role of the signed-in reviewer (a lead's review settles a conflict).
alter table review.reviews add column reviewer_role text;

-- Accounts: passwords are hashed by the application (argon2); the database
-- keeps the hash only.
create table review.users (
    user_name       text primary key check (user_name ~ '^[A-Za-z0-9._-]{1,64}$'),
    role            text not null check (role in ('reviewer', 'lead', 'auditor')),
    sites           text[] not null default '{}',
    password_hash   text not null,
    disabled        boolean not null default false,
    created_at      timestamptz not null default clock_timestamp(),
    updated_at      timestamptz not null default clock_timestamp()
);

-- Server-side sessions: only the SHA-256 of the token is stored.
create table review.sessions (
    token_sha256    text primary key,
    user_name       text not null references review.users,
    created_at      timestamptz not null default clock_timestamp(),
    expires_at      timestamptz not null,
    ended_at        timestamptz
);

-- Every view of a patient-level page and every export: append-only.
create table review.access_log (
    log_id          bigint generated always as identity primary key,
    user_name       text not null,
    at              timestamptz not null default clock_timestamp(),
    what            text not null,
    object_id       text,
    rows            integer not null default 0
);

-- Assignments of cases to reviewers by a lead: append-only (the latest holds).
create table review.assignments (
    assignment_id   bigint generated always as identity primary key,
    case_id         text not null references audit.cases,
    assignee        text not null references review.users,
    assigned_by     text not null,
    assigned_at     timestamptz not null default clock_timestamp()
);

alter table review.users owner to rxaudit_reviews;
alter table review.sessions owner to rxaudit_reviews;
alter table review.access_log owner to rxaudit_reviews;
alter table review.assignments owner to rxaudit_reviews;
create trigger access_log_append_only before update or delete on review.access_log
    for each row execute function review.refuse_change();
create trigger access_log_no_truncate before truncate on review.access_log
    for each statement execute function review.refuse_change();
create trigger assignments_append_only before update or delete on review.assignments
    for each row execute function review.refuse_change();
create trigger assignments_no_truncate before truncate on review.assignments
    for each statement execute function review.refuse_change();
grant select on review.access_log, review.assignments to rxaudit_loader;

-- The signed-in user of this request's session: (user_name, role, sites),
-- or no row when the session is missing, unknown, ended or expired, or its
-- user disabled.
create function review.session_user_row()
returns table (user_name text, role text, sites text[])
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select u.user_name, u.role, u.sites
  from review.sessions s join review.users u on u.user_name = s.user_name
  where s.token_sha256 = encode(sha256(convert_to(
          coalesce(nullif(current_setting('rxaudit.session', true), ''), '-'), 'UTF8')), 'hex')
    and s.ended_at is null and s.expires_at > clock_timestamp() and not u.disabled
$$;

-- The sites whose patients this request may see: '{*}' for an auditor, the
-- user's sites for a reviewer or lead, none without a live session.
create function review.visible_sites() returns text[]
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select coalesce(
    (select case when role = 'auditor' then array['*'] else sites end
     from review.session_user_row()),
    '{}'::text[])
$$;

create function review.session_role() returns text
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select role from review.session_user_row()
$$;

-- Sign-in: the application verifies the password against the hash, then
-- opens a session; the token is returned once and never stored.
create function review.password_hash_of(p_user text) returns text
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select password_hash from review.users where user_name = p_user and not disabled
$$;

create function review.open_session(p_user text, p_minutes integer) returns text
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  token text := encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text
                                          || clock_timestamp()::text, 'UTF8')), 'hex');
begin
  if not exists (select 1 from review.users where user_name = p_user and not disabled) then
    raise exception 'no such user' using errcode = 'invalid_authorization_specification';
  end if;
  if p_minutes is null or p_minutes < 1 or p_minutes > 24 * 60 then
    raise exception 'a session lasts 1 minute to 24 hours' using errcode = 'check_violation';
  end if;
  insert into review.sessions (token_sha256, user_name, expires_at)
  values (encode(sha256(convert_to(token, 'UTF8')), 'hex'), p_user,
          clock_timestamp() + make_interval(mins => p_minutes));
  return token;
end
$$;

create function review.close_session() returns void
language sql security definer set search_path = pg_catalog, pg_temp as $$
  update review.sessions set ended_at = clock_timestamp()
  where token_sha256 = encode(sha256(convert_to(
          coalesce(nullif(current_setting('rxaudit.session', true), ''), '-'), 'UTF8')), 'hex')
    and ended_at is null
$$;

-- A review by the signed-in user, of a case of a site they may see.
create function review.web_review(p_case_id text, p_status text, p_note text) returns bigint
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
  if coalesce(btrim(p_note), '') = '' then
    raise exception 'a review needs a note' using errcode = 'check_violation';
  end if;
  insert into review.reviews (case_id, status, note, reviewer, reviewed_at, recorded_by,
                              reviewer_role)
  values (p_case_id, p_status, p_note, who, clock_timestamp(), session_user, who_role)
  returning review_id into new_id;
  return new_id;
end
$$;

-- An assignment by a lead, of a case of their sites, to a user of that site.
create function review.web_assign(p_case_id text, p_assignee text) returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  who text;
  who_role text;
  visible text[] := review.visible_sites();
  site text;
  new_id bigint;
begin
  select user_name, role into who, who_role from review.session_user_row();
  if who is null or who_role <> 'lead' then
    raise exception 'only a signed-in lead assigns cases' using errcode = 'insufficient_privilege';
  end if;
  select site_id into site from audit.cases where case_id = p_case_id;
  if site is null or not (site = any(visible)) then
    raise exception 'no case %', p_case_id using errcode = 'no_data_found';
  end if;
  if not exists (select 1 from review.users where user_name = p_assignee and not disabled
                 and (site = any(sites) or role = 'auditor')) then
    raise exception 'no reviewer % at this site', p_assignee using errcode = 'no_data_found';
  end if;
  insert into review.assignments (case_id, assignee, assigned_by)
  values (p_case_id, p_assignee, who) returning assignment_id into new_id;
  return new_id;
end
$$;

-- An access-log row for the signed-in user (or 'anonymous' without a session).
create function review.log_access(p_what text, p_object text, p_rows integer) returns void
language sql security definer set search_path = pg_catalog, pg_temp as $$
  insert into review.access_log (user_name, what, object_id, rows)
  values (coalesce((select user_name from review.session_user_row()), 'anonymous'),
          left(p_what, 200), left(p_object, 200), greatest(coalesce(p_rows, 0), 0))
$$;

-- Account management, for an operator (`rxaudit users`): the pipeline role.
create function review.set_user(p_user text, p_role text, p_sites text[], p_hash text)
returns void
language sql security definer set search_path = pg_catalog, pg_temp as $$
  insert into review.users (user_name, role, sites, password_hash)
  values (p_user, p_role, coalesce(p_sites, '{}'), p_hash)
  on conflict (user_name) do update set role = excluded.role, sites = excluded.sites,
      password_hash = excluded.password_hash, disabled = false, updated_at = clock_timestamp()
$$;

create function review.set_user_sites(p_user text, p_sites text[]) returns boolean
language sql security definer set search_path = pg_catalog, pg_temp as $$
  with u as (update review.users set sites = coalesce(p_sites, '{}'),
                 updated_at = clock_timestamp() where user_name = p_user returning 1)
  select exists (select 1 from u)
$$;

create function review.disable_user(p_user text) returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  update review.sessions set ended_at = clock_timestamp()
  where user_name = p_user and ended_at is null;
  update review.users set disabled = true, updated_at = clock_timestamp()
  where user_name = p_user;
  return found;
end
$$;

do $$
declare f text;
begin
  foreach f in array array[
    'review.session_user_row()', 'review.visible_sites()', 'review.session_role()',
    'review.password_hash_of(text)', 'review.open_session(text, integer)',
    'review.close_session()', 'review.web_review(text, text, text)',
    'review.web_assign(text, text)', 'review.log_access(text, text, integer)',
    'review.set_user(text, text, text[], text)', 'review.set_user_sites(text, text[])',
    'review.disable_user(text)']
  loop
    execute format('alter function %s owner to rxaudit_reviews', f);
    execute format('revoke all on function %s from public', f);
  end loop;
end
$$;
grant execute on function review.session_user_row(), review.visible_sites(),
    review.session_role(), review.password_hash_of(text), review.open_session(text, integer),
    review.close_session(), review.web_review(text, text, text), review.web_assign(text, text),
    review.log_access(text, text, integer)
    to rxaudit_web;
grant execute on function review.set_user(text, text, text[], text),
    review.set_user_sites(text, text[]), review.disable_user(text), review.log_access(text, text, integer)
    to rxaudit_loader;

-- Worklists are newest first, a page at a time: an index in that order lets
-- a page stop after its rows; the site filter uses the second.
create index cases_case_date_idx on audit.cases (case_date desc, case_id);
create index cases_site_idx on audit.cases (site_id, status);
