-- Covered days of each fill day, carried forward per patient and ingredient
-- (PQA): a fill day starts the day after the earlier supply runs out. With
-- S = running total of days supplied, the last covered day is
--   cover_end(i) = S(i) + max over j <= i of (filled_on(j) - 1 - S(j-1)),
-- the closed form of end(i) = max(end(i-1), filled_on(i) - 1) + supply(i),
-- so plain window functions compute it. Trials: a fill day leaving more than
-- episode_gap_days uncovered days after the latest covered day so far
-- (filled_on - cover_end(i-1) - 1 > gap) starts a new trial. Covered days are
-- not yet cut at as_of here; every reader cuts them.
-- Fill days (the first CTEs): the fills of one patient and ingredient dated on the same day
-- are one fill day. Its daily dose is the sum of the rows' known doses
-- (unknown when none is known), its supply the largest of their supplies.
-- When the largest supply is more than supply_mismatch_factor times the
-- smallest, the rows are a titration (a starter supply beside the target
-- dose): the daily dose is then the largest known dose, not the sum. A
-- paroxetine day is CR when any of its rows is; citalopram's maximum is
-- citalopram_older_max_mg from citalopram_older_age. start_sig_mg: the sum of
-- the sig doses the rows give (the smallest of them on a titration day), for
-- the prazosin start test. A benzodiazepine fill day whose rows all give a
-- quantity covers at most the sum of their quantities in days (rounded down,
-- at least 1) under bzd_quantity_caps_supply (quantity_capped when it cut the
-- supply): two tablets before an MRI cannot cover a week. Paroxetine's maximum
-- is paroxetine_older_max_mg (CR: paroxetine_cr_older_max_mg) from
-- paroxetine_older_age.
with days as (
    select
        f.patient_id,
        f.ingredient,
        f.filled_on,
        min(f.drug_class) as drug_class,
        bool_or(f.first_line) as first_line,
        min(f.min_mg) as ingredient_min_mg,
        min(f.max_mg) as ingredient_max_mg,
        max(f.supply) as row_supply,
        case when %(bzd_quantity_caps_supply)s::boolean and min(f.drug_class) = 'BZD'
                  and bool_and(f.quantity is not null)
             then greatest(1, floor(sum(f.quantity)))::integer end as quantity_days,
        max(f.supply) > min(f.supply) * %(supply_mismatch_factor)s::numeric as is_titration,
        sum(f.dose_mg) as dose_sum,
        max(f.dose_mg) as dose_max,
        sum(f.sig_dose_mg) as sig_sum,
        min(f.sig_dose_mg) as sig_min,
        bool_or(f.is_cr) as is_cr,
        bool_or(f.is_older) as is_older,
        bool_or(f.is_older_paroxetine) as is_older_paroxetine,
        count(*)::integer as n_rows,
        array_agg(f.rx_id order by f.rx_id) as rx_ids,
        -- the site and prescriber of the day's first row (smallest rx_id): one
        -- comparison of arrays per row, not a sort per day
        (min(array[f.rx_id, f.site_id, f.prescriber_id]))[2] as site_id,
        (min(array[f.rx_id, f.site_id, f.prescriber_id]))[3] as prescriber_id
    from core.drug_fills as f
    where f.is_fill
    group by f.patient_id, f.ingredient, f.filled_on
),

fill_days as (
select
    d.patient_id,
    d.ingredient,
    d.filled_on,
    d.drug_class,
    d.first_line,
    least(d.row_supply, coalesce(d.quantity_days, d.row_supply)) as supply,
    coalesce(d.quantity_days < d.row_supply, false) as quantity_capped,
    d.is_titration,
    case when d.is_titration then d.dose_max else d.dose_sum end as daily_dose_mg,
    case when d.is_titration then d.sig_min else d.sig_sum end as start_sig_mg,
    d.is_cr,
    case when d.is_cr then %(paroxetine_cr_min_mg)s::numeric else d.ingredient_min_mg end
        as min_mg,
    case
        when d.is_cr and d.is_older_paroxetine
            then least(%(paroxetine_cr_max_mg)s::numeric, %(paroxetine_cr_older_max_mg)s::numeric)
        when d.is_cr then %(paroxetine_cr_max_mg)s::numeric
        when d.ingredient = 'paroxetine' and d.is_older_paroxetine
            then least(d.ingredient_max_mg, %(paroxetine_older_max_mg)s::numeric)
        when d.ingredient = 'citalopram' and d.is_older
            then least(d.ingredient_max_mg, %(citalopram_older_max_mg)s::numeric)
        else d.ingredient_max_mg
    end as max_mg,
    d.n_rows,
    d.rx_ids,
    d.site_id,
    d.prescriber_id
from days as d
),

running as (
    select
        f.*,
        (sum(f.supply) over w)::integer as supplied_through
    from fill_days as f
    window w as (
        partition by f.patient_id, f.ingredient
        order by f.filled_on
        rows unbounded preceding
    )
),

ends as (
    select
        r.*,
        max(r.filled_on - 1 - (r.supplied_through - r.supply)) over w
            + r.supplied_through as cover_end
    from running as r
    window w as (
        partition by r.patient_id, r.ingredient
        order by r.filled_on
        rows unbounded preceding
    )
),

breaks as (
    select
        e.*,
        e.cover_end - e.supply + 1 as cover_start,
        case
            when lag(e.cover_end) over w is null then 1
            when e.filled_on - lag(e.cover_end) over w - 1 > %(episode_gap_days)s::integer then 1
            else 0
        end as starts_trial
    from ends as e
    window w as (partition by e.patient_id, e.ingredient order by e.filled_on)
)

select
    b.patient_id,
    b.ingredient,
    b.drug_class,
    b.first_line,
    b.filled_on,
    b.supply,
    b.quantity_capped,
    b.daily_dose_mg,
    b.start_sig_mg,
    b.is_titration,
    b.is_cr,
    b.min_mg,
    b.max_mg,
    b.rx_ids,
    b.site_id,
    b.prescriber_id,
    b.cover_start,
    b.cover_end,
    sum(b.starts_trial) over (
        partition by b.patient_id, b.ingredient
        order by b.filled_on
        rows unbounded preceding
    )::integer as trial_no
from breaks as b
