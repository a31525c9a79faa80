-- PSY-DELAYED: at least stabilization_max_sessions sessions of a stabilisation
-- modality (stabilization_modalities), counted as rows and at most
-- tf_max_per_day a date, dated on or after the index date and before the first
-- TF session on or after it (or before as_of when there is none).
-- Case key: patient; case_date: the date of the n-th such session.
with first_tf as (
    select
        c.patient_id,
        c.index_date,
        min(t.session_date) as first_tf_date
    from core.ptsd_cohort as c
    left join core.tf_sessions as t
        on t.patient_id = c.patient_id and t.session_date >= c.index_date
    group by c.patient_id, c.index_date
),

stabilisation as (
    select
        s.patient_id,
        s.session_id,
        s.session_date,
        s.site_id,
        row_number() over (partition by s.patient_id, s.session_date order by s.session_id)
            as nth_of_day
    from core.therapy_sessions as s
    inner join first_tf as f on f.patient_id = s.patient_id
    where s.is_current
      and s.modality = any(%(stabilization_modalities)s::text[])
      and s.session_date >= f.index_date
      and s.session_date < coalesce(f.first_tf_date, %(as_of)s::date)
      and s.session_date <= %(as_of)s::date
),

numbered as (
    select
        s.*,
        row_number() over (partition by s.patient_id order by s.session_date, s.session_id) as nth
    from stabilisation as s
    where s.nth_of_day <= %(tf_max_per_day)s::integer
)

select
    audit.case_id('PSY-DELAYED', n.patient_id) as case_id,
    'PSY-DELAYED' as rule_id,
    'low' as severity,
    'open' as status,
    n.patient_id,
    max(n.site_id) filter (where n.nth = %(stabilization_max_sessions)s::integer) as site_id,
    null::text as prescriber_id,
    max(n.session_date) filter (where n.nth = %(stabilization_max_sessions)s::integer)
        as case_date,
    format(
        '%%s stabilisation sessions after the PTSD diagnosis of %%s, %%s (the %%s on %%s)',
        max(n.nth), audit.iso(min(f.index_date)),
        case when min(f.first_tf_date) is null then 'no trauma-focused session yet'
             else 'before the first trauma-focused session on ' || audit.iso(min(f.first_tf_date))
        end,
        audit.ordinal(%(stabilization_max_sessions)s::integer),
        audit.iso(max(n.session_date) filter (where n.nth = %(stabilization_max_sessions)s::integer))
    ) as summary,
    string_agg('therapy_sessions:' || n.session_id, ';' order by n.session_date, n.session_id)
        filter (where n.nth <= %(stabilization_max_sessions)s::integer) as evidence
from numbered as n
inner join first_tf as f on f.patient_id = n.patient_id
group by n.patient_id
having max(n.nth) >= %(stabilization_max_sessions)s::integer
