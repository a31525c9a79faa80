-- Responses: a REMISSION clinical event, or a PCL-5 score below
-- remission_pcl5_below that is at least pcl5_min_drop points below a PCL-5
-- score of remission_pcl5_below or more dated in the pcl5_baseline_days
-- before it ([d - 365, d - 1]). Dated on or before as_of. source: the row.
select e.patient_id, e.event_date as response_on, 'clinical_events:' || e.event_id as source
from core.clinical_events as e
inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
where e.is_current and e.event_type = 'REMISSION' and e.event_date <= %(as_of)s::date
union all
select a.patient_id, a.assessed_on, 'assessments:' || a.assessment_id
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
