-- Benzodiazepine episodes: first fill, last covered day (stopping at as_of).
select
    b.patient_id,
    b.episode_no,
    min(b.filled_on) as episode_start,
    least(max(b.cover_end), %(as_of)s::date) as episode_end,
    max(b.cover_end) + %(episode_gap_days)s::integer >= %(as_of)s::date as is_ongoing,
    count(*)::integer as n_fills,
    string_agg(distinct b.ingredient, ', ' order by b.ingredient) as ingredients,
    array_agg(b.rx_id order by b.filled_on, b.rx_id) as rx_ids
from core.bzd_fills as b
group by b.patient_id, b.episode_no
