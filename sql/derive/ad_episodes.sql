-- Antidepressant episodes (class level, as in HEDIS AMM): the fill days of
-- every antidepressant of a patient together, by the trial gap rule (a fill
-- day leaving more than episode_gap_days uncovered days after the latest
-- covered day so far, of any antidepressant, starts a new episode).
-- Carry-forward stays per ingredient (fill_coverage); an episode's covered
-- days are the union of its fill days' (merged into islands here), stopping
-- at as_of. A switch from one antidepressant to another within the gap stays
-- in one episode. Antidepressants: the judged ones (SSRI, SNRI) and the other
-- antidepressants (OTHER_AD: duloxetine, mirtazapine...), which join episodes
-- but are never judged for dose. has_judged: the episode holds a fill day of
-- a judged antidepressant. next_episode_start: the patient's next episode's.
with fills as (
    select
        f.*,
        max(f.cover_end) over (
            partition by f.patient_id
            order by f.filled_on, f.ingredient
            rows between unbounded preceding and 1 preceding
        ) as latest_before
    from core.fill_coverage as f
    where f.drug_class in ('SSRI', 'SNRI', 'OTHER_AD')
),

numbered as (
    select
        f.*,
        sum(case when f.latest_before is null
                   or f.filled_on - f.latest_before - 1 > %(episode_gap_days)s::integer
                 then 1 else 0 end) over (
            partition by f.patient_id order by f.filled_on, f.ingredient rows unbounded preceding
        )::integer as episode_no
    from fills as f
),

bounds as (
    select
        n.*,
        min(n.filled_on) over (partition by n.patient_id, n.episode_no) as episode_start,
        max(n.cover_end) over (
            partition by n.patient_id, n.episode_no
            order by n.cover_start, n.cover_end, n.ingredient
            rows between unbounded preceding and 1 preceding
        ) as covered_before
    from numbered as n
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

island_spans as (
    select
        patient_id,
        episode_no,
        min(episode_start) as episode_start,
        min(cover_start) as island_start,
        max(cover_end) as island_end
    from islands
    group by patient_id, episode_no, island_no
),

covered as (
    select
        patient_id,
        episode_no,
        sum(greatest(0, least(island_end, %(as_of)s::date) - island_start + 1))::integer
            as covered_days,
        sum(greatest(0, least(island_end, episode_start + (%(acute_window_days)s::integer - 1),
                              %(as_of)s::date) - island_start + 1))::integer as acute_covered_days,
        sum(greatest(0, least(island_end,
                              episode_start + (%(amm_continuation_window_days)s::integer - 1),
                              %(as_of)s::date) - island_start + 1))::integer as continuation_covered_days
    from island_spans
    group by patient_id, episode_no
)

select
    n.patient_id,
    n.episode_no,
    min(n.filled_on) as episode_start,
    least(max(n.cover_end), %(as_of)s::date) as episode_end,
    max(n.cover_end) + %(episode_gap_days)s::integer >= %(as_of)s::date as is_ongoing,
    min(c.covered_days) as covered_days,
    min(c.acute_covered_days) as acute_covered_days,
    min(c.continuation_covered_days) as continuation_covered_days,
    count(*)::integer as n_fill_days,
    bool_or(n.drug_class in ('SSRI', 'SNRI')) as has_judged,
    lead(min(n.filled_on)) over (partition by n.patient_id order by n.episode_no)
        as next_episode_start,
    string_agg(distinct n.ingredient, ', ' order by n.ingredient) as ingredients,
    (array_agg(n.ingredient order by n.filled_on desc, n.ingredient))[1] as last_ingredient,
    string_agg('prescriptions:' || array_to_string(n.rx_ids, ';prescriptions:'), ';'
               order by n.filled_on, n.ingredient) as evidence,
    (array_agg(n.site_id order by n.filled_on, n.ingredient))[1] as first_site_id,
    (array_agg(n.prescriber_id order by n.filled_on, n.ingredient))[1] as first_prescriber_id
from numbered as n
inner join covered as c on c.patient_id = n.patient_id and c.episode_no = n.episode_no
group by n.patient_id, n.episode_no
