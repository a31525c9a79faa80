-- Benzodiazepine fill days grouped into episodes across ingredients: a fill
-- day leaving more than bzd_episode_gap_days uncovered days after the latest
-- covered day so far (of any benzodiazepine, each carried forward per
-- ingredient) starts a new episode, so a few as-needed tablets a quarter are
-- one episode, not four.
with ordered as (
    select
        f.*,
        max(f.cover_end) over (
            partition by f.patient_id
            order by f.filled_on, f.ingredient
            rows between unbounded preceding and 1 preceding
        ) as latest_before
    from core.fill_coverage as f
    where f.drug_class = 'BZD'
)

select
    o.patient_id,
    o.ingredient,
    o.filled_on,
    o.supply,
    o.daily_dose_mg,
    o.quantity_capped,
    o.cover_start,
    o.cover_end,
    o.rx_ids,
    o.site_id,
    o.prescriber_id,
    sum(
        case
            when o.latest_before is null
              or o.filled_on - o.latest_before - 1 > %(bzd_episode_gap_days)s::integer then 1
            else 0
        end
    ) over (
        partition by o.patient_id order by o.filled_on, o.ingredient rows unbounded preceding
    )::integer as episode_no
from ordered as o
