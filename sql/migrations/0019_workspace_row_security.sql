-- 0019: row-level security under the workspace's patient-level views.
--
-- The `web` views that show patients (cases, case index, reviews,
-- assignments, pathway, provenance, timeline) belong to rxaudit_web_views
-- (NOLOGIN, held by nobody; sql/views/web.sql gives it the views). For that
-- role, row-level security keeps only the signed-in user's sites on every
-- patient-level table the views read: a case of a visible site, a pathway
-- row of a visible home site or of a patient with a visible case, a source row
-- of a patient with a visible case. So a view that forgot
-- its own site filter still shows no other site's patient. The pipeline owns
-- these tables and is not subject to the policies; rxaudit_reviews (whose
-- functions check the sites themselves) reads every case, as before.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'rxaudit_web_views') then
    create role rxaudit_web_views nologin;
  end if;
end
$$;

grant usage on schema audit, core, review, report to rxaudit_web_views;
grant select on audit.cases, audit.pathway, audit.case_evidence, audit.evidence_labels,
    audit.rules, audit.runs, audit.batches to rxaudit_web_views;
grant select on review.reviews, review.assignments to rxaudit_web_views;
grant select on report.cases, report.pathway, report.reviews, report.latest_run to rxaudit_web_views;
grant select on core.prescriptions, core.therapy_sessions, core.clinical_events,
    core.diagnoses, core.assessments, core.trial_enrollments to rxaudit_web_views;  -- provenance
grant execute on function review.visible_sites() to rxaudit_web_views;

create index cases_patient_idx on audit.cases (patient_id);

alter table audit.cases enable row level security;
create policy web_sites on audit.cases for select to rxaudit_web_views
    using (array[site_id, '*'] && (select review.visible_sites()));
create policy every_case on audit.cases for select to rxaudit_reviews using (true);

alter table audit.case_evidence enable row level security;
create policy web_sites on audit.case_evidence for select to rxaudit_web_views
    using (exists (select 1 from audit.cases as c where c.case_id = case_evidence.case_id));

alter table audit.pathway enable row level security;
create policy web_sites on audit.pathway for select to rxaudit_web_views
    using (array[home_site_id, '*'] && (select review.visible_sites())
           or exists (select 1 from audit.cases as c where c.patient_id = pathway.patient_id));
