-- Benzodiazepine episodes: first fill, last covered day (stopping at as_of),
-- covered days in all and the exposure (covered days on or after the PTSD
-- index date and on or before as_of), over the union of the episode's fill
-- days' covered days (merged into islands). Taper (bzd_taper_fraction > 0):
-- the last three fill days with a known daily dose (date order, then
-- ingredient name), d1 > d2 > d3, with d3 at most bzd_taper_fraction of the
-- episode's highest known daily dose (mg, whatever the ingredient).
-- first_site_id, first_prescriber_id: the episode's earliest fill day's.
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

known_doses as (
    select
        b.patient_id,
        b.episode_no,
        b.daily_dose_mg,
        row_number() over (
            partition by b.patient_id, b.episode_no order by b.filled_on desc, b.ingredient desc
        ) as back_no
    from core.bzd_fills as b
    where b.daily_dose_mg is not null and %(bzd_taper_fraction)s::numeric > 0
),

tapers as (
    select
        patient_id,
        episode_no,
        max(daily_dose_mg) as top_mg,
        max(daily_dose_mg) filter (where back_no = 3) as d1,
        max(daily_dose_mg) filter (where back_no = 2) as d2,
        max(daily_dose_mg) filter (where back_no = 1) as d3
    from known_doses
    group by patient_id, episode_no
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
               order by b.filled_on, b.ingredient) as evidence,
    (array_agg(b.site_id order by b.filled_on, b.ingredient))[1] as first_site_id,
    (array_agg(b.prescriber_id order by b.filled_on, b.ingredient))[1] as first_prescriber_id,
    coalesce(bool_or(t.d1 > t.d2 and t.d2 > t.d3
                     and t.d3 <= %(bzd_taper_fraction)s::numeric * t.top_mg), false) as is_tapered,
    min(t.top_mg) as taper_top_mg,
    min(t.d3) as taper_last_mg
from core.bzd_fills as b
inner join covered as c on c.patient_id = b.patient_id and c.episode_no = b.episode_no
left join tapers as t on t.patient_id = b.patient_id and t.episode_no = b.episode_no
group by b.patient_id, b.episode_no
