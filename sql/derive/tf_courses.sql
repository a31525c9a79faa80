-- Trauma-focused courses: TF dates at most course_gap_days apart.
with breaks as (
    select
        t.*,
        case
            when lag(t.session_date) over w is null then 1
            when t.session_date - lag(t.session_date) over w > %(course_gap_days)s::integer then 1
            else 0
        end as starts_course
    from core.tf_sessions as t
    window w as (partition by t.patient_id order by t.session_date)
),

numbered as (
    select
        b.*,
        sum(b.starts_course) over (
            partition by b.patient_id order by b.session_date rows unbounded preceding
        )::integer as course_no
    from breaks as b
)

select
    n.patient_id,
    n.course_no,
    min(n.session_date) as course_start,
    max(n.session_date) as last_session,
    count(distinct n.session_date)::integer as n_sessions,
    max(n.session_date) + %(course_gap_days)s::integer >= %(as_of)s::date as is_ongoing,
    string_agg(distinct n.modalities, '/' order by n.modalities) as modalities,
    (array_agg(n.site_id order by n.session_date desc))[1] as last_site_id,
    array_agg(sid order by n.session_date, sid) as session_ids
from numbered as n
cross join lateral unnest(n.session_ids) as sid
group by n.patient_id, n.course_no
