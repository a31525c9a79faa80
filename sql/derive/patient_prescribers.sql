-- Each cohort patient's prescribers: one row per patient, site, prescriber and
-- quarter (period: its first day) of a prescription dated on or before as_of,
-- for the prescriber-level measures' denominators.
select
    rx.patient_id,
    rx.site_id,
    rx.prescriber_id,
    date_trunc('quarter', rx.filled_on::timestamp)::date as period
from core.prescriptions as rx
inner join core.ptsd_cohort as c on c.patient_id = rx.patient_id
where rx.is_current and rx.filled_on <= %(as_of)s::date and rx.prescriber_id is not null
group by rx.patient_id, rx.site_id, rx.prescriber_id, date_trunc('quarter', rx.filled_on::timestamp)::date
