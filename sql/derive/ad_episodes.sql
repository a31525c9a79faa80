-- Antidepressant episodes (class level, as in HEDIS AMM): the fill days of
-- every antidepressant of a patient together, by the trial gap rule (a fill
-- day leaving more than episode_gap_days uncovered days after the latest
-- covered day so far, of any antidepressant, starts a new episode).
-- Carry-forward stays per ingredient (fill_coverage); an episode's covered
-- days are the union of its fill days' (counted in one ordered pass below),
-- stopping at as_of. A switch from one antidepressant to another within the
-- gap stays in one episode. Antidepressants: the judged ones (SSRI, SNRI)
-- and the other antidepressants (OTHER_AD: duloxetine, mirtazapine...),
-- which join episodes but are never judged for dose. has_judged: the episode
-- holds a fill day of a judged antidepressant. next_episode_start: the
-- patient's next episode's.
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

-- Covered days: the union of the episode's covered spans, cut at a day C
-- (as_of, or the end of the acute or continuation window). With the spans
-- ordered by first day, each adds the days past the latest covered day so
-- far: greatest(0, least(upto, C) - greatest(least(before, C), cover_start - 1)),
-- upto and before the running latest covered day with and without it (every
-- span has at least one day: a supply is at least 1). One ordered pass, no
-- islands grouped and joined back.
spans as (
    select
        n.*,
        min(n.filled_on) over (partition by n.patient_id, n.episode_no) as episode_start,
        max(n.cover_end) over (
            partition by n.patient_id, n.episode_no
            order by n.cover_start, n.cover_end, n.ingredient
            rows between unbounded preceding and 1 preceding
        ) as before,
        max(n.cover_end) over (
            partition by n.patient_id, n.episode_no
            order by n.cover_start, n.cover_end, n.ingredient
            rows unbounded preceding
        ) as upto
    from numbered as n
),

cut as (
    select
        s.*,
        %(as_of)s::date as all_to,
        least(s.episode_start + (%(acute_window_days)s::integer - 1), %(as_of)s::date) as acute_to,
        least(s.episode_start + (%(amm_continuation_window_days)s::integer - 1), %(as_of)s::date)
            as continuation_to
    from spans as s
)

select
    n.patient_id,
    n.episode_no,
    min(n.filled_on) as episode_start,
    least(max(n.cover_end), %(as_of)s::date) as episode_end,
    max(n.cover_end) + %(episode_gap_days)s::integer >= %(as_of)s::date as is_ongoing,
    sum(greatest(0, least(n.upto, n.all_to) - case when n.before is null then n.cover_start - 1
        else greatest(least(n.before, n.all_to), n.cover_start - 1) end))::integer as covered_days,
    sum(greatest(0, least(n.upto, n.acute_to) - case when n.before is null then n.cover_start - 1
        else greatest(least(n.before, n.acute_to), n.cover_start - 1) end))::integer
        as acute_covered_days,
    sum(greatest(0, least(n.upto, n.continuation_to) - case when n.before is null
        then n.cover_start - 1 else greatest(least(n.before, n.continuation_to), n.cover_start - 1)
        end))::integer as continuation_covered_days,
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
from cut as n
group by n.patient_id, n.episode_no
