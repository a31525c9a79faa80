-- The rule engine's helper functions. Re-created by every upgrade (after the
-- migrations) and part of the engine hash: a change of wording here forces a
-- full audit, as a change of a rule's SQL does.

-- A stable case id: the same rule and case key give the same id on every run.
create or replace function audit.case_id(variadic parts text[]) returns text
language sql immutable parallel safe as $$
  select 'C' || substr(md5(array_to_string(parts, '|', '')), 1, 16)
$$;

-- Dates as YYYY-MM-DD whatever the session's DateStyle.
create or replace function audit.iso(d date) returns text
language sql immutable parallel safe as $$
  select to_char(d, 'YYYY-MM-DD')
$$;

-- Numbers without trailing zeros (50, 0.5, 37.5); '?' when unknown.
create or replace function audit.num(n numeric) returns text
language sql immutable parallel safe as $$
  select coalesce(trim_scale(round(n, 3))::text, '?')
$$;

create or replace function audit.ordinal(n integer) returns text
language sql immutable parallel safe as $$
  select n || case
    when n % 100 in (11, 12, 13) then 'th'
    when n % 10 = 1 then 'st'
    when n % 10 = 2 then 'nd'
    when n % 10 = 3 then 'rd'
    else 'th' end
$$;

-- Evidence: source row ids as table:id joined with ';'.
create or replace function audit.evidence(source_table text, ids text[]) returns text
language sql immutable parallel safe as $$
  select string_agg(source_table || ':' || id, ';' order by ord)
  from unnest(ids) with ordinality as u(id, ord)
$$;

-- A code as the source meant it: NFKC (full-width letters and digits become
-- ASCII), format characters (zero-width spaces, joiners, BOM) and every kind
-- of space removed. An ASCII code without spaces is returned as it is.
create or replace function audit.clean_code(code text) returns text
language sql immutable parallel safe as $$
  select case when code ~ '[^\x21-\x7e]'
    then regexp_replace(normalize(regexp_replace(code,
      '[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]', '', 'g'),
      NFKC), '[[:space:]\u00a0\u2000-\u200a\u202f\u205f\u3000]', '', 'g')
    else code end
$$;

-- An ICD-10-CM code as the policy's lists hold it: cleaned, no dot, upper case.
create or replace function audit.icd(code text) returns text
language sql immutable parallel safe as $$
  select upper(replace(audit.clean_code(code), '.', ''))
$$;

-- Whether a (normalised) code starts with one of the prefixes.
create or replace function audit.has_prefix(code text, prefixes text[]) returns boolean
language sql immutable parallel safe as $$
  select exists (select 1 from unnest(prefixes) as p where starts_with(code, p))
$$;

-- A TF course's minimum sessions: the modality's own, else the default.
create or replace function audit.tf_minimum(
    modality text, modalities text[], counts integer[], default_min integer
) returns integer
language sql immutable parallel safe as $$
  select coalesce(
    (select m.n from unnest(modalities, counts) as m(k, n) where m.k = modality), default_min)
$$;

-- A drug name as the name map matches it: NFKC, with format characters
-- (Unicode category Cf: zero-width spaces and joiners, soft hyphen, BOM)
-- removed.
create or replace function audit.clean_name(name text) returns text
language sql immutable parallel safe as $$
  select normalize(regexp_replace(name,
    '[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]', '', 'g'),
    NFKC)
$$;
