-- Trauma-focused courses: TF sessions (tf_sessions) whose dates are at most
-- course_gap_days apart. A course's modality is its most frequent TF
-- modality (a tie goes to the larger minimum, then the name); its minimum is
-- that modality's own (tf_min_sessions_by_modality) or tf_min_sessions. It is
-- adequate with at least its minimum sessions, or with a response dated from
-- its first session to its last session + course_response_days; its
-- adequacy_date is the earlier of its minimum-th session's date and that
-- response's.
with breaks as (
    select
        t.*,
        case
            when lag(t.session_date) over w is null then 1
            when t.session_date - lag(t.session_date) over w > %(course_gap_days)s::integer then 1
            else 0
        end as starts_course
    from core.tf_sessions as t
    window w as (partition by t.patient_id order by t.session_date, t.session_id)
),

numbered as (
    select
        b.*,
        sum(b.starts_course) over (
            partition by b.patient_id order by b.session_date, b.session_id
            rows unbounded preceding
        )::integer as course_no,
        row_number() over (
            partition by b.patient_id order by b.session_date, b.session_id
        ) as nth
    from breaks as b
),

-- each session with its modality's sessions in the course and that
-- modality's minimum (the policy's own, else tf_min_sessions)
counted as (
    select
        n.*,
        count(*) over (partition by n.patient_id, n.course_no, n.modality) as modality_sessions,
        coalesce(m.minimum, %(tf_min_sessions)s::integer) as modality_minimum
    from numbered as n
    left join unnest(%(tf_min_modalities)s::text[], %(tf_min_counts)s::integer[])
        as m(modality, minimum) on m.modality = n.modality
),

courses as (
    select
        n.patient_id,
        n.course_no,
        min(n.session_date) as course_start,
        max(n.session_date) as last_session,
        count(*)::integer as n_sessions,
        (array_agg(n.modality order by n.modality_sessions desc, n.modality_minimum desc,
                   n.modality))[1] as modality,
        (array_agg(n.modality_minimum order by n.modality_sessions desc, n.modality_minimum desc,
                   n.modality))[1] as minimum,
        max(n.session_date) + %(course_gap_days)s::integer >= %(as_of)s::date as is_ongoing,
        string_agg(distinct n.modality, '/' order by n.modality) as modalities,
        (array_agg(n.session_date order by n.session_date, n.session_id))[
            (array_agg(n.modality_minimum order by n.modality_sessions desc,
                       n.modality_minimum desc, n.modality))[1]] as minimum_reached_on,
        (array_agg(n.site_id order by n.session_date desc, n.session_id desc))[1] as last_site_id,
        string_agg('therapy_sessions:' || n.session_id, ';' order by n.session_date, n.session_id)
            as evidence
    from counted as n
    group by n.patient_id, n.course_no
)

select
    c.*,
    r.response_on,
    r.source as response_source,
    c.minimum_reached_on is not null or r.response_on is not null as is_adequate,
    least(c.minimum_reached_on, r.response_on) as adequacy_date
from courses as c
left join lateral (
    select x.response_on, x.source
    from core.responses as x
    where x.patient_id = c.patient_id
      and x.response_on between c.course_start
                            and c.last_session + %(course_response_days)s::integer
    order by x.response_on, x.source
    limit 1
) as r on true
