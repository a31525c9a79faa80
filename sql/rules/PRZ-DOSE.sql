-- PRZ-DOSE: per prazosin trial, a first-day fill above prazosin_start_max_mg
-- (low) or any fill above prazosin_max_mg (medium; medium when both).
-- Case key: patient, trial start; case_date: the earliest fill breaking a limit.
with fills as (
    select
        f.*,
        t.trial_start,
        (f.filled_on = t.trial_start and f.daily_dose_mg > %(prazosin_start_max_mg)s::numeric)
            as breaks_start,
        f.daily_dose_mg > %(prazosin_max_mg)s::numeric as breaks_max
    from core.fill_coverage as f
    inner join core.med_trials as t using (patient_id, ingredient, trial_no)
    where f.ingredient = 'prazosin'
),

trials as (
    select
        patient_id,
        trial_start,
        bool_or(breaks_start) as any_start,
        bool_or(breaks_max) as any_max,
        max(daily_dose_mg) filter (where breaks_start) as start_mg,
        max(daily_dose_mg) as max_mg,
        min(filled_on) filter (where breaks_start or breaks_max) as case_date,
        (array_agg(rx_id order by filled_on, rx_id) filter (where breaks_start or breaks_max))
            as rx_ids,
        (array_agg(site_id order by filled_on, rx_id) filter (where breaks_start or breaks_max))[1]
            as site_id,
        (array_agg(prescriber_id order by filled_on, rx_id)
            filter (where breaks_start or breaks_max))[1] as prescriber_id
    from fills
    group by patient_id, trial_start
)

select
    audit.case_id('PRZ-DOSE', t.patient_id, audit.iso(t.trial_start)) as case_id,
    'PRZ-DOSE' as rule_id,
    case when t.any_max then 'medium' else 'low' end as severity,
    'open' as status,
    t.patient_id,
    t.site_id,
    t.prescriber_id,
    t.case_date,
    concat_ws('; ',
        case when t.any_start then format(
            'Prazosin started %%s at %%s mg/day (start at %%s mg)',
            audit.iso(t.trial_start), audit.num(t.start_mg),
            audit.num(%(prazosin_start_max_mg)s::numeric)) end,
        case when t.any_max then format(
            'Prazosin titrated to %%s mg/day (maximum %%s mg)',
            audit.num(t.max_mg), audit.num(%(prazosin_max_mg)s::numeric)) end
    ) as summary,
    audit.evidence('prescriptions', t.rx_ids) as evidence
from trials as t
where t.any_start or t.any_max
