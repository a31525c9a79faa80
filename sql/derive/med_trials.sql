-- Medication trials: per patient, ingredient and trial_no (fill_coverage).
-- Covered days stop at as_of; the dose in force on a covered day is the daily
-- dose of the fill day covering it.
--   acute window        [trial_start, trial_start + acute_window_days - 1]
--   acute_covered_days  covered days in it; acute_target_date: the day on
--                       which its acute_days-th covered day falls
--   effective_days      covered days, anywhere in the trial, on which the dose
--                       in force was at or above the minimum effective dose
--   adequacy_date       the acute_days-th such day (NULL: not adequate)
--   window_*            what the fill days dated in the acute window gave
--   last_dose_mg        the dose in force of the latest fill day
with fills as (
    select
        f.*,
        min(f.filled_on) over t as trial_start,
        min(f.filled_on) over t + (%(acute_window_days)s::integer - 1) as acute_end
    from core.fill_coverage as f
    window t as (partition by f.patient_id, f.ingredient, f.trial_no)
),

days as (
    select
        f.*,
        greatest(0, least(f.cover_end, f.acute_end, %(as_of)s::date) - f.cover_start + 1)
            as acute_days_of_fill,
        case when f.daily_dose_mg >= f.min_mg
             then greatest(0, least(f.cover_end, %(as_of)s::date) - f.cover_start + 1)
             else 0 end as effective_days_of_fill
    from fills as f
),

running as (
    -- one sort serves the running sums and the first and last values
    select
        d.*,
        sum(d.acute_days_of_fill) over w as acute_through,
        sum(d.effective_days_of_fill) over w as effective_through,
        first_value(d.min_mg) over w as first_min_mg,
        first_value(d.site_id) over w as first_site,
        first_value(d.prescriber_id) over w as first_prescriber,
        last_value(d.daily_dose_mg) over whole as last_dose,
        last_value(d.min_mg) over whole as last_min,
        min(d.filled_on) filter (where d.daily_dose_mg > d.max_mg) over whole as above_max_on
    from days as d
    window w as (
        partition by d.patient_id, d.ingredient, d.trial_no
        order by d.filled_on rows unbounded preceding
    ),
    whole as (
        partition by d.patient_id, d.ingredient, d.trial_no
        order by d.filled_on rows between unbounded preceding and unbounded following
    )
)

select
    r.patient_id,
    r.ingredient,
    r.trial_no,
    min(r.drug_class) as drug_class,
    bool_or(r.first_line) as first_line,
    min(r.trial_start) as trial_start,
    least(max(r.cover_end), %(as_of)s::date) as trial_end,
    max(r.cover_end) + %(episode_gap_days)s::integer >= %(as_of)s::date as is_ongoing,
    min(r.acute_end) as acute_end,
    count(*)::integer as n_fill_days,
    sum(greatest(0, least(r.cover_end, %(as_of)s::date) - r.cover_start + 1))::integer
        as covered_days,
    sum(r.acute_days_of_fill)::integer as acute_covered_days,
    min(
        case
            when r.acute_through >= %(acute_days)s::integer
             and r.acute_through - r.acute_days_of_fill < %(acute_days)s::integer
            then r.cover_start
                 + (%(acute_days)s::integer - (r.acute_through - r.acute_days_of_fill))::integer - 1
        end
    ) as acute_target_date,
    sum(r.effective_days_of_fill)::integer as effective_days,
    min(
        case
            when r.effective_through >= %(acute_days)s::integer
             and r.effective_through - r.effective_days_of_fill < %(acute_days)s::integer
            then r.cover_start
                 + (%(acute_days)s::integer - (r.effective_through - r.effective_days_of_fill))::integer - 1
        end
    ) as adequacy_date,
    coalesce(bool_or(r.filled_on <= r.acute_end and r.daily_dose_mg >= r.min_mg), false)
        as window_effective_dose,
    coalesce(bool_or(r.filled_on <= r.acute_end and r.daily_dose_mg is not null), false)
        as window_known_dose,
    max(r.daily_dose_mg) filter (where r.filled_on <= r.acute_end) as window_max_dose_mg,
    min(r.first_min_mg) as min_mg,
    min(r.last_dose) as last_dose_mg,
    min(r.last_min) as last_min_mg,
    string_agg('prescriptions:' || array_to_string(r.rx_ids, ';prescriptions:'), ';'
               order by r.filled_on) as evidence,
    min(r.first_site) as first_site_id,
    min(r.first_prescriber) as first_prescriber_id,
    -- the first fill day above the maximum (one per day: its values, no sort)
    min(r.above_max_on) as first_above_max_on,
    min(r.daily_dose_mg) filter (where r.filled_on = r.above_max_on) as first_above_max_mg,
    min(r.max_mg) filter (where r.filled_on = r.above_max_on) as first_above_max_limit_mg,
    min('prescriptions:' || array_to_string(r.rx_ids, ';prescriptions:'))
        filter (where r.filled_on = r.above_max_on) as first_above_max_evidence,
    min(r.site_id) filter (where r.filled_on = r.above_max_on) as first_above_max_site_id,
    min(r.prescriber_id) filter (where r.filled_on = r.above_max_on)
        as first_above_max_prescriber_id,
    bool_or(r.is_cr) as any_cr
from running as r
group by r.patient_id, r.ingredient, r.trial_no
