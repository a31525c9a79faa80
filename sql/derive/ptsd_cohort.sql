-- The PTSD cohort: patients with at least cohort_min_dates distinct dates of a
-- diagnosis in the PTSD value set, dated on or before as_of. index_date = the
-- earliest such diagnosis. birth_year and age_90_plus serve the age tests.
-- A patient is one identity across sources; when several sources deliver a
-- row for the patient, the home site, birth year and age marker are those of
-- the most recently loaded current row (the latest word on the patient).
-- history_start: the load's history start, or the patient's own history_from
-- (schema 1.2) when that is later. single_dx_on: the PTSD diagnosis date when
-- the patient has exactly one (BZD-PTSD's single remote diagnosis).
with ptsd_diagnoses as (
    select
        d.patient_id,
        d.diagnosis_id,
        d.diagnosed_on
    from core.diagnoses as d
    where d.is_current
      and d.diagnosed_on <= %(as_of)s
      -- an incremental audit: only the patients touched since the last run
      and (not %(incremental)s::boolean or d.patient_id in (select t.patient_id from rx_touched as t))
      and (
          (d.code_system = 'ICD10CM' and audit.icd(d.code) = any(%(ptsd_icd10cm)s::text[]))
          or (d.code_system = 'SNOMED' and audit.clean_code(d.code) = any(%(ptsd_snomed)s::text[]))
      )
),

first_diagnosis as (
    select
        patient_id,
        (array_agg(diagnosis_id order by diagnosed_on, diagnosis_id))[1] as index_diagnosis_id,
        min(diagnosed_on) as index_date,
        case when count(distinct diagnosed_on) = 1 then min(diagnosed_on) end as single_dx_on
    from ptsd_diagnoses
    group by patient_id
    having count(distinct diagnosed_on) >= %(cohort_min_dates)s::integer
)

select
    f.patient_id,
    p.site_id as home_site_id,
    p.age_90_plus,
    p.birth_year,
    f.index_date,
    f.index_diagnosis_id,
    greatest(%(history_start)s::date, p.history_from) as history_start,
    f.single_dx_on
from first_diagnosis as f
cross join lateral (
    select x.site_id, x.age_90_plus, x.birth_year, x.history_from
    from core.patients as x
    where x.patient_id = f.patient_id and x.is_current
    order by x.batch_no desc, x.line_no desc
    limit 1
) as p
