-- 0018: rule measures after review, and when a rule's cases mature.
--
-- numerator_after_review: the patients of the numerator with at least one
-- counted case whose latest review (when the run computed its measures) is
-- neither false_positive nor justified; rate_after_review over the same
-- denominator. Process measures carry NULL. The shared measures do not carry
-- them: the difference of the two numerators is a count of reviews, often
-- small, that no suppression of the raw cells covers.
alter table audit.measures add column numerator_after_review integer;
alter table audit.measures add column rate_after_review numeric;

-- Each rule's place in the reports and how many days after its case date a
-- case can first be raised (rule.toml `matures_after`, read from the policy):
-- the cases of the last that many days are still maturing.
alter table audit.rules add column report_order integer not null default 0;
alter table audit.rules add column matures_days integer not null default 0;

-- The superseded versions of each record, found by its id (the workspace's
-- provenance of a case); the current ones have their key index.
create index prescriptions_superseded_idx on core.prescriptions (rx_id) where not is_current;
create index therapy_sessions_superseded_idx on core.therapy_sessions (session_id)
    where not is_current;
create index clinical_events_superseded_idx on core.clinical_events (event_id)
    where not is_current;
create index diagnoses_superseded_idx on core.diagnoses (diagnosis_id) where not is_current;
create index assessments_superseded_idx on core.assessments (assessment_id) where not is_current;
create index trial_enrollments_superseded_idx on core.trial_enrollments (enrollment_id)
    where not is_current;

-- The workspace's worklist, in PostgreSQL: the case ids of one page of the
-- visible cases (the signed-in user's sites) that pass the filters, newest
-- case date first, and their count. A view on the cases cannot serve this
-- from the case-date index: a security-barrier view is planned apart from
-- the query's ORDER BY and LIMIT. A NULL filter is no filter; p_review
-- 'none' is "not reviewed"; p_mine a user: the cases whose latest
-- assignment is to that user; p_limit NULL: every row (the export).
create function review.worklist_condition() returns text
language sql immutable as $$
  -- $1 the visible sites, $2 rule, $3 site, $4 prescriber, $5 severity,
  -- $6 status, $7 from, $8 to, $9 review, $10 assignee; run by EXECUTE with
  -- the values bound (USING), so each run is planned for its own filters
  -- (an auditor's sites are {*}: the first line folds to true)
  select $q$($1 @> array['*'] or c.site_id = any($1))
     and ($2::text is null or c.rule_id = $2)
     and ($3::text is null or c.site_id = $3)
     and ($4::text is null or c.prescriber_id = $4)
     and ($5::text is null or c.severity = $5)
     and ($6::text is null or c.status = $6)
     and ($7::date is null or c.case_date >= $7)
     and ($8::date is null or c.case_date <= $8)
     and ($9::text is null or coalesce((select v.status from review.reviews as v
                                        where v.case_id = c.case_id
                                        order by v.review_id desc limit 1), 'none') = $9)
     and ($10::text is null or (select a.assignee from review.assignments as a
                                where a.case_id = c.case_id
                                order by a.assignment_id desc limit 1) = $10)$q$
$$;

create function review.web_worklist(
    p_rule text, p_site text, p_prescriber text, p_severity text, p_status text,
    p_from date, p_to date, p_review text, p_mine text, p_limit integer, p_offset integer
) returns setof text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
begin
  return query execute
    'select c.case_id from audit.cases as c where ' || review.worklist_condition()
    || ' order by c.case_date desc, c.case_id limit $11 offset $12'
    using review.visible_sites(), p_rule, p_site, p_prescriber, p_severity, p_status,
          p_from, p_to, p_review, p_mine,
          case when p_limit is not null then greatest(p_limit, 0) end,  -- LIMIT NULL: all
          greatest(coalesce(p_offset, 0), 0);
end
$$;

create function review.web_worklist_count(
    p_rule text, p_site text, p_prescriber text, p_severity text, p_status text,
    p_from date, p_to date, p_review text, p_mine text
) returns bigint
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
  n bigint;
begin
  execute 'select count(*) from audit.cases as c where ' || review.worklist_condition()
    into n
    using review.visible_sites(), p_rule, p_site, p_prescriber, p_severity, p_status,
          p_from, p_to, p_review, p_mine;
  return n;
end
$$;

do $$
declare f text;
begin
  foreach f in array array[
    'review.worklist_condition()',
    'review.web_worklist(text, text, text, text, text, date, date, text, text, integer, integer)',
    'review.web_worklist_count(text, text, text, text, text, date, date, text, text)']
  loop
    execute format('alter function %s owner to rxaudit_reviews', f);
    execute format('revoke all on function %s from public', f);
  end loop;
end
$$;
grant execute on function
    review.web_worklist(text, text, text, text, text, date, date, text, text, integer, integer),
    review.web_worklist_count(text, text, text, text, text, date, date, text, text)
    to rxaudit_web;

-- The access log under the name the interface gives it: audit.access_log,
-- read-only, over the append-only review.access_log (which stays owned by
-- rxaudit_reviews, in a schema no other role owns).
create view audit.access_log as
    select log_id, user_name, at, what, object_id, rows from review.access_log;
alter view audit.access_log owner to rxaudit_reviews;
grant select on audit.access_log to rxaudit_loader;
