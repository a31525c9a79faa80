-- Responses: a REMISSION clinical event; a PCL-5 score below
-- remission_pcl5_below that is at least pcl5_min_drop points below a PCL-5
-- score of remission_pcl5_below or more dated in the pcl5_baseline_days
-- before it ([d - 365, d - 1]); or (caps5_response_fraction > 0) a CAPS-5
-- total at most caps5_response_fraction of a CAPS-5 total of at least
-- caps5_min_baseline dated in the same days before it. Dated on or before
-- as_of. source: the row. kind: REMISSION, PCL5 or CAPS5. caps5_baseline: the
-- highest CAPS-5 baseline that made a CAPS-5 response (a later CAPS-5 above
-- caps5_response_fraction of it is a relapse: care_pathway).
select
    e.patient_id,
    e.event_date as response_on,
    'clinical_events:' || e.event_id as source,
    'REMISSION' as kind,
    null::integer as caps5_baseline
from core.clinical_events as e
inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
where e.is_current and e.event_type = 'REMISSION' and e.event_date <= %(as_of)s::date
union all
select a.patient_id, a.assessed_on, 'assessments:' || a.assessment_id, 'PCL5', null::integer
from core.assessments as a
inner join core.ptsd_cohort as c on c.patient_id = a.patient_id
where a.is_current
  and a.instrument = 'PCL5'
  and a.score < %(remission_pcl5_below)s::integer
  and a.assessed_on <= %(as_of)s::date
  and exists (
      select 1
      from core.assessments as b
      where b.is_current
        and b.patient_id = a.patient_id
        and b.instrument = 'PCL5'
        and b.score >= %(remission_pcl5_below)s::integer
        and b.score - a.score >= %(pcl5_min_drop)s::integer
        and b.assessed_on between a.assessed_on - %(pcl5_baseline_days)s::integer
                              and a.assessed_on - 1
  )
union all
select a.patient_id, a.assessed_on, 'assessments:' || a.assessment_id, 'CAPS5', base.baseline
from core.assessments as a
inner join core.ptsd_cohort as c on c.patient_id = a.patient_id
cross join lateral (
    select max(b.score) as baseline
    from core.assessments as b
    where b.is_current
      and b.patient_id = a.patient_id
      and b.instrument = 'CAPS5'
      and b.score >= %(caps5_min_baseline)s::integer
      and a.score <= %(caps5_response_fraction)s::numeric * b.score
      and b.assessed_on between a.assessed_on - %(pcl5_baseline_days)s::integer
                            and a.assessed_on - 1
) as base
where %(caps5_response_fraction)s::numeric > 0
  and a.is_current
  and a.instrument = 'CAPS5'
  and a.assessed_on <= %(as_of)s::date
  and base.baseline is not null
