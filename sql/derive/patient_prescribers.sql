-- Each cohort patient's prescribers: one row per patient, site, prescriber and
-- quarter (period: its first day) of a prescription dated on or before as_of,
-- for the prescriber-level measures' denominators.
-- Grouped per patient (a lateral over the cohort): no hash table of every row.
select
    c.patient_id,
    q.site_id,
    q.prescriber_id,
    q.period
from core.ptsd_cohort as c
cross join lateral (
    select rx.site_id, rx.prescriber_id, date_trunc('quarter', rx.filled_on::timestamp)::date as period
    from core.prescriptions as rx
    where rx.patient_id = c.patient_id and rx.is_current and rx.filled_on <= %(as_of)s::date
      and rx.prescriber_id is not null
    group by rx.site_id, rx.prescriber_id, date_trunc('quarter', rx.filled_on::timestamp)::date
) as q
