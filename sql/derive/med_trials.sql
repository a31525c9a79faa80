-- Medication trials: per patient, ingredient and trial_no (fill_coverage).
-- The acute window is [trial_start, trial_start + acute_window_days - 1];
-- covered days stop at as_of. acute_target_date is the day on which the
-- acute_days-th covered day of the window falls (NULL if never reached).
with bounds as (
    select
        patient_id,
        ingredient,
        trial_no,
        min(filled_on) as trial_start
    from core.fill_coverage
    group by patient_id, ingredient, trial_no
),

fills as (
    select
        f.*,
        b.trial_start,
        b.trial_start + (%(acute_window_days)s::integer - 1) as acute_end
    from core.fill_coverage as f
    inner join bounds as b using (patient_id, ingredient, trial_no)
),

acute as (
    select
        f.*,
        greatest(
            0,
            least(f.cover_end, f.acute_end, %(as_of)s::date)
            - greatest(f.cover_start, f.trial_start) + 1
        ) as acute_days_of_fill
    from fills as f
),

running as (
    select
        a.*,
        sum(a.acute_days_of_fill) over (
            partition by a.patient_id, a.ingredient, a.trial_no
            order by a.cover_start, a.rx_id
            rows unbounded preceding
        ) as acute_through
    from acute as a
)

select
    r.patient_id,
    r.ingredient,
    r.trial_no,
    min(r.drug_class) as drug_class,
    bool_or(r.first_line) as first_line,
    min(r.min_mg) as min_mg,
    min(r.max_mg) as max_mg,
    min(r.trial_start) as trial_start,
    least(max(r.cover_end), %(as_of)s::date) as trial_end,
    max(r.cover_end) + %(episode_gap_days)s::integer >= %(as_of)s::date as is_ongoing,
    min(r.acute_end) as acute_end,
    count(*)::integer as n_fills,
    sum(greatest(0, least(r.cover_end, %(as_of)s::date) - r.cover_start + 1))::integer
        as covered_days,
    sum(r.acute_days_of_fill)::integer as acute_covered_days,
    min(
        case
            when r.acute_through >= %(acute_days)s::integer
             and r.acute_through - r.acute_days_of_fill < %(acute_days)s::integer
            then greatest(r.cover_start, r.trial_start)
                 + (%(acute_days)s::integer - (r.acute_through - r.acute_days_of_fill))::integer - 1
        end
    ) as acute_target_date,
    coalesce(bool_or(r.filled_on <= r.acute_end and r.daily_dose_mg >= r.min_mg), false)
        as has_effective_dose,
    coalesce(bool_or(r.filled_on <= r.acute_end and r.daily_dose_mg is not null), false)
        as has_known_dose,
    max(r.daily_dose_mg) filter (where r.filled_on <= r.acute_end) as max_dose_in_window,
    array_agg(r.rx_id order by r.filled_on, r.rx_id) as rx_ids,
    (array_agg(r.site_id order by r.filled_on, r.rx_id))[1] as first_site_id,
    (array_agg(r.prescriber_id order by r.filled_on, r.rx_id))[1] as first_prescriber_id,
    min(r.filled_on) filter (where r.daily_dose_mg > r.max_mg) as first_above_max_on,
    (array_agg(r.rx_id order by r.filled_on, r.rx_id)
        filter (where r.daily_dose_mg > r.max_mg))[1] as first_above_max_rx_id,
    (array_agg(r.daily_dose_mg order by r.filled_on, r.rx_id)
        filter (where r.daily_dose_mg > r.max_mg))[1] as first_above_max_mg,
    (array_agg(r.site_id order by r.filled_on, r.rx_id)
        filter (where r.daily_dose_mg > r.max_mg))[1] as first_above_max_site_id,
    (array_agg(r.prescriber_id order by r.filled_on, r.rx_id)
        filter (where r.daily_dose_mg > r.max_mg))[1] as first_above_max_prescriber_id
from running as r
group by r.patient_id, r.ingredient, r.trial_no
