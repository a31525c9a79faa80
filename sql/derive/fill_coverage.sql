-- Covered days of each fill day, carried forward per patient and ingredient
-- (PQA): a fill day starts the day after the earlier supply runs out. With
-- S = running total of days supplied, the last covered day is
--   cover_end(i) = S(i) + max over j <= i of (filled_on(j) - 1 - S(j-1)),
-- the closed form of end(i) = max(end(i-1), filled_on(i) - 1) + supply(i),
-- so plain window functions compute it. Trials: a fill day leaving more than
-- episode_gap_days uncovered days after the latest covered day so far
-- (filled_on - cover_end(i-1) - 1 > gap) starts a new trial. Covered days are
-- not yet cut at as_of here; every reader cuts them.
with running as (
    select
        f.*,
        (sum(f.supply) over w)::integer as supplied_through
    from core.fill_days as f
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
