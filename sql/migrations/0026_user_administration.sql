-- 0026: user administration that says what it does.
--
-- review.add_user creates an account and refuses an existing name (it used
-- to reset that user's password in silence); review.set_password changes a
-- password and ends every session of the user; review.enable_user undoes a
-- disable; review.list_users gives the accounts without their hashes.
create or replace function review.add_user(p_user text, p_role text, p_sites text[], p_hash text)
returns boolean
language sql security definer set search_path = pg_catalog, pg_temp as $$
  with u as (
    insert into review.users (user_name, role, sites, password_hash)
    values (p_user, p_role, coalesce(p_sites, '{}'), p_hash)
    on conflict (user_name) do nothing returning 1
  )
  select exists (select 1 from u)
$$;

create or replace function review.set_password(p_user text, p_hash text) returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  update review.users set password_hash = p_hash, updated_at = clock_timestamp()
  where user_name = p_user;
  if not found then
    return false;
  end if;
  update review.sessions set ended_at = clock_timestamp()
  where user_name = p_user and ended_at is null;
  return true;
end
$$;

create or replace function review.enable_user(p_user text) returns boolean
language sql security definer set search_path = pg_catalog, pg_temp as $$
  with u as (update review.users set disabled = false, updated_at = clock_timestamp()
             where user_name = p_user returning 1)
  select exists (select 1 from u)
$$;

create or replace function review.list_users()
returns table (user_name text, role text, sites text[], disabled boolean,
               created_at timestamptz, updated_at timestamptz)
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select user_name, role, sites, disabled, created_at, updated_at from review.users
  order by user_name
$$;

do $$
declare f text;
begin
  foreach f in array array['review.add_user(text, text, text[], text)',
                           'review.set_password(text, text)', 'review.enable_user(text)',
                           'review.list_users()'] loop
    execute format('alter function %s owner to rxaudit_reviews', f);
    execute format('revoke all on function %s from public', f);
    execute format('grant execute on function %s to rxaudit_loader', f);
  end loop;
end
$$;
