-- 0021: a session opens only for who proves the password, inside the database.
--
-- The web role could open a session for any user (review.open_session) and
-- read every password hash (review.password_hash_of): a compromised web
-- process or login reached every site and could attack every hash offline.
-- Now the web role may only ask for a user's argon2id parameters and salt
-- (review.sign_in_params: for an unknown or disabled name, a salt derived
-- from a secret the web role cannot read, so a name is not disclosed) and
-- present the raw argon2id output it computed from the typed password
-- (review.sign_in); the database compares it with the stored hash, counts
-- the failures per user name under a per-name lock (so parallel attempts
-- cannot race past the limit) and writes the access log itself. The hash
-- never leaves the database. Single sign-on (the trusted proxy vouches for
-- the name) needs review.open_session, held only by rxaudit_web_sso: the
-- administrator grants that role to the web login when turning single
-- sign-on on. A password change (review.set_user with another hash) ends
-- every session of that user.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'rxaudit_web_sso') then
    create role rxaudit_web_sso nologin in role rxaudit_web;
  end if;
end
$$;

create table review.auth_secret (secret bytea not null);
alter table review.auth_secret owner to rxaudit_reviews;
insert into review.auth_secret
select decode(md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text), 'hex');

-- Failed sign-ins, per user name (the last window's are what count).
create table review.sign_in_failures (
    user_name   text not null,
    at          timestamptz not null default clock_timestamp()
);
create index sign_in_failures_idx on review.sign_in_failures (user_name, at);
alter table review.sign_in_failures owner to rxaudit_reviews;

create function review.b64_unpadded(p text) returns bytea
language sql immutable set search_path = pg_catalog, pg_temp as $$
  select decode(p || repeat('=', (4 - length(p) % 4) % 4), 'base64')
$$;

create function review.sign_in_params(p_user text, out params text, out hash_len integer)
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select coalesce(
           (select regexp_replace(password_hash, '[$][^$]*$', '') from review.users
            where user_name = p_user and not disabled and password_hash like '$argon2id$%'),
           '$argon2id$v=19$m=65536,t=3,p=4$'
           || rtrim(encode(substr(sha256(convert_to(coalesce(p_user, ''), 'UTF8')
                                         || (select secret from review.auth_secret)), 1, 16),
                           'base64'), '=')),
         coalesce(
           (select length(review.b64_unpadded(substring(password_hash from '[$]([^$]*)$')))
            from review.users
            where user_name = p_user and not disabled and password_hash like '$argon2id$%'),
           32)
$$;

-- At most 5 failed attempts per user name in 5 minutes (whoever asks).
create function review.sign_in(p_user text, p_key bytea, p_minutes integer)
returns text
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  stored text;
  token text;
  recent integer;
begin
  if p_minutes is null or p_minutes < 1 or p_minutes > 24 * 60 then
    raise exception 'a session lasts 1 minute to 24 hours' using errcode = 'check_violation';
  end if;
  -- one attempt per name at a time: parallel attempts are counted in turn
  perform pg_advisory_xact_lock(hashtextextended('rxaudit sign-in ' || coalesce(p_user, ''), 0));
  select count(*) into recent from review.sign_in_failures
  where user_name = p_user
    and at > clock_timestamp() - interval '5 minutes';
  if recent >= 5 then
    insert into review.access_log (user_name, what, object_id, rows)
    values ('anonymous', 'refused sign-in (too many failures)', left(p_user, 64), 0);
    return 'locked';
  end if;
  select password_hash into stored from review.users
  where user_name = p_user and not disabled and password_hash like '$argon2id$%';
  if stored is null or p_key is null
     or p_key <> review.b64_unpadded(substring(stored from '[$]([^$]*)$')) then
    insert into review.sign_in_failures (user_name) values (left(coalesce(p_user, ''), 64));
    insert into review.access_log (user_name, what, object_id, rows)
    values ('anonymous', 'failed sign-in', left(p_user, 64), 0);
    return null;
  end if;
  delete from review.sign_in_failures where user_name = p_user;
  token := encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text
                                    || clock_timestamp()::text, 'UTF8')), 'hex');
  insert into review.sessions (token_sha256, user_name, expires_at)
  values (encode(sha256(convert_to(token, 'UTF8')), 'hex'), p_user,
          clock_timestamp() + make_interval(mins => p_minutes));
  insert into review.access_log (user_name, what, object_id, rows)
  values (p_user, 'sign-in', null, 0);
  return token;
end
$$;

-- A password change ends every session of that user.
create or replace function review.set_user(p_user text, p_role text, p_sites text[], p_hash text)
returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  update review.sessions set ended_at = clock_timestamp()
  where user_name = p_user and ended_at is null
    and exists (select 1 from review.users
                where user_name = p_user and password_hash is distinct from p_hash);
  insert into review.users (user_name, role, sites, password_hash)
  values (p_user, p_role, coalesce(p_sites, '{}'), p_hash)
  on conflict (user_name) do update set role = excluded.role, sites = excluded.sites,
      password_hash = excluded.password_hash, disabled = false, updated_at = clock_timestamp();
end
$$;

do $$
declare f text;
begin
  foreach f in array array[
    'review.b64_unpadded(text)', 'review.sign_in_params(text)',
    'review.sign_in(text, bytea, integer)']
  loop
    execute format('alter function %s owner to rxaudit_reviews', f);
    execute format('revoke all on function %s from public', f);
  end loop;
end
$$;
alter function review.set_user(text, text, text[], text) owner to rxaudit_reviews;
revoke all on function review.set_user(text, text, text[], text) from public;
grant execute on function review.set_user(text, text, text[], text) to rxaudit_loader;

revoke execute on function review.password_hash_of(text), review.open_session(text, integer)
    from rxaudit_web;
grant execute on function review.sign_in_params(text),
    review.sign_in(text, bytea, integer) to rxaudit_web;
grant execute on function review.open_session(text, integer) to rxaudit_web_sso;
