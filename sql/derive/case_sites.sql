-- Where and when each patient has an open case (not info) that the activity tables do
-- not already place them, for the rule measures' denominators (a patient in
-- a rule's numerator at a site and quarter is in its denominator there too).
-- Built after the rules, from the run's cases: one row per patient and
--   level 'site':       (quarter, site) of an open case with no row of
--                       core.patient_sites for the patient there;
--   level 'all':        quarter of an open case with no row of
--                       core.patient_sites for the patient that quarter
--                       (site_id null);
--   level 'prescriber': (quarter, site, prescriber) of an open case naming a
--                       prescriber, with no row of core.patient_prescribers
--                       for the patient there.
with cases as (
    select distinct patient_id, site_id, coalesce(prescriber_id, '') as prescriber_id,
           date_trunc('quarter', case_date)::date as period
    from audit.run_cases
    where run_id = %(run_id)s and status = 'open' and severity <> 'info'
      and case_date <= %(as_of)s::date
)

select distinct c.patient_id, 'site' as level, c.period, c.site_id, '' as prescriber_id
from cases as c
where not exists (
    select 1 from core.patient_sites as s
    where s.patient_id = c.patient_id and s.period = c.period and s.site_id = c.site_id)
union all
select distinct c.patient_id, 'all', c.period, null, ''
from cases as c
where not exists (
    select 1 from core.patient_sites as s
    where s.patient_id = c.patient_id and s.period = c.period)
union all
select c.patient_id, 'prescriber', c.period, c.site_id, c.prescriber_id
from cases as c
where c.prescriber_id <> '' and not exists (
    select 1 from core.patient_prescribers as p
    where p.patient_id = c.patient_id and p.period = c.period
      and p.site_id = c.site_id and p.prescriber_id = c.prescriber_id)
