-- Benzodiazepine episodes: first fill, last covered day (stopping at as_of),
-- covered days in all and the exposure (covered days on or after the PTSD
-- index date and on or before as_of), over the union of the episode's fill
-- days' covered days (merged into islands).
with bounds as (
    select
        b.*,
        max(b.cover_end) over (
            partition by b.patient_id, b.episode_no
            order by b.cover_start, b.cover_end, b.ingredient
            rows between unbounded preceding and 1 preceding
        ) as covered_before
    from core.bzd_fills as b
),

islands as (
    select
        b.*,
        sum(case when b.covered_before is null or b.cover_start > b.covered_before + 1
                 then 1 else 0 end) over (
            partition by b.patient_id, b.episode_no
            order by b.cover_start, b.cover_end, b.ingredient rows unbounded preceding
        ) as island_no
    from bounds as b
),

spans as (
    select patient_id, episode_no, min(cover_start) as island_start, max(cover_end) as island_end
    from islands
    group by patient_id, episode_no, island_no
),

covered as (
    select
        s.patient_id,
        s.episode_no,
        sum(greatest(0, least(s.island_end, %(as_of)s::date) - s.island_start + 1))::integer
            as covered_days,
        sum(greatest(0, least(s.island_end, %(as_of)s::date)
                        - greatest(s.island_start, c.index_date) + 1))::integer as exposure_days
    from spans as s
    inner join core.ptsd_cohort as c on c.patient_id = s.patient_id
    group by s.patient_id, s.episode_no
)

select
    b.patient_id,
    b.episode_no,
    min(b.filled_on) as episode_start,
    least(max(b.cover_end), %(as_of)s::date) as episode_end,
    max(b.cover_end) + %(bzd_episode_gap_days)s::integer >= %(as_of)s::date as is_ongoing,
    min(c.covered_days) as covered_days,
    min(c.exposure_days) as exposure_days,
    count(*)::integer as n_fill_days,
    string_agg(distinct b.ingredient, ', ' order by b.ingredient) as ingredients,
    string_agg('prescriptions:' || array_to_string(b.rx_ids, ';prescriptions:'), ';'
               order by b.filled_on, b.ingredient) as evidence
from core.bzd_fills as b
inner join covered as c on c.patient_id = b.patient_id and c.episode_no = b.episode_no
group by b.patient_id, b.episode_no
