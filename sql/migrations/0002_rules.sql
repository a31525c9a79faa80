-- 0002: what the rule engine needs: helper functions, the policy's value
-- sets, the cases of each run, and the cases' current state.

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

-- What was missing before a treatment-resistant label or a first MDMA dose.
create or replace function audit.readiness_gaps(
    tf_before integer, tf_min integer, adequate boolean, best_ingredient text,
    best_start date, best_covered integer, best_effective boolean, best_acute_end date,
    event_date date, acute_days integer
) returns text
language sql immutable parallel safe as $$
  select 'TF sessions: ' || tf_before || ' of ' || tf_min || '; adequate trial: ' ||
    case
      when adequate then 'yes'
      when best_ingredient is null then 'none'
      else initcap(best_ingredient) || ' from ' || audit.iso(best_start) || ' (' ||
        case
          when best_acute_end >= event_date then 'acute window not complete'
          when best_covered < acute_days then best_covered || ' of ' || acute_days || ' covered days'
          else 'no fill at an effective dose'
        end || ')'
    end
$$;

-- The policy's value sets, refreshed at the start of each audit.
create table core.policy_ingredients (
    ingredient  text primary key,
    drug_class  text not null,
    rxcui       text,
    min_mg      numeric,
    max_mg      numeric,
    first_line  boolean not null
);

create table core.policy_drug_names (
    ingredient  text not null references core.policy_ingredients on delete cascade,
    name        text not null,
    pattern     text not null,
    primary key (ingredient, name)
);

alter table audit.runs
    add column policy_version text,
    add column policy_sha256 text;

-- The cases a run found, exactly as the rules returned them.
create table audit.run_cases (
    run_id          text not null references audit.runs on delete cascade,
    case_id         text not null,
    rule_id         text not null,
    severity        text not null check (severity in ('low', 'medium', 'high', 'critical')),
    status          text not null check (status in ('open', 'excluded')),
    patient_id      text not null,
    site_id         text,
    prescriber_id   text,
    case_date       date not null,
    summary         text not null,
    evidence        text not null,
    primary key (run_id, case_id)
);

-- Per run and rule: how many cases, how long it took.
create table audit.run_rules (
    run_id      text not null references audit.runs on delete cascade,
    rule_id     text not null,
    cases       integer not null,
    seconds     numeric not null,
    primary key (run_id, rule_id)
);

-- One row per case ever found: its latest finding and where it was seen.
create table audit.cases (
    case_id         text primary key,
    rule_id         text not null,
    severity        text not null,
    status          text not null check (status in ('open', 'excluded', 'resolved')),
    patient_id      text not null,
    site_id         text,
    prescriber_id   text,
    case_date       date not null,
    summary         text not null,
    evidence        text not null,
    policy_version  text not null,
    first_seen_run  text not null references audit.runs,
    last_seen_run   text not null references audit.runs,
    updated_at      timestamptz not null default now()
);
create index cases_rule_idx on audit.cases (rule_id, status);
