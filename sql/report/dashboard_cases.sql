-- The dashboard's cases and evidence as JSON, built in SQL and returned in
-- rows the caller streams into the page: columnar arrays, sites, prescribers
-- and evidence labels dictionary-encoded (an index into the lookups), dates as
-- days since 1970-01-01. The evidence (audit.case_evidence, kept by the
-- audit) is one flat array of [case position, kind, start day, end day, label
-- index]; kinds: 0 fill (a bar of its covered days), 1 session, 2 event,
-- 3 diagnosis, 4 assessment. A case that is not resolved is a finding of the
-- latest audit: its last-seen run is this run.
with picked as (
    select
        c.*,
        coalesce(v.status, '') as review,
        (row_number() over (order by c.rule_id, c.case_date, c.patient_id, c.case_id) - 1)::integer
            as pos
    from audit.cases as c -- every case: this run's findings and the resolved ones
    left join lateral (
        select x.status from audit.reviews as x
        where x.case_id = c.case_id order by x.review_id desc limit 1
    ) as v on true
),

sites as (
    select site_id, (row_number() over (order by site_id) - 1)::integer as idx
    from (select distinct site_id from picked where site_id is not null) as s
),

prescribers as (
    select prescriber_id, (row_number() over (order by prescriber_id) - 1)::integer as idx
    from (select distinct prescriber_id from picked where prescriber_id is not null) as s
),

evidence as (
    select p.pos, e.kind, e.start_on, e.end_on, e.label
    from picked as p
    inner join audit.case_evidence as e on e.case_id = p.case_id
),

labels as (
    select label, (row_number() over (order by label) - 1)::integer as idx
    from (select distinct label from evidence) as l
),

case_rows as (
    select p.*, coalesce(s.idx, -1) as site_idx, coalesce(pr.idx, -1) as prescriber_idx,
           pc.index_date
    from picked as p
    left join sites as s on s.site_id = p.site_id
    left join prescribers as pr on pr.prescriber_id = p.prescriber_id
    left join core.ptsd_cohort as pc on pc.patient_id = p.patient_id
),

-- one row per column of the cases (the caller streams the rows, so no
-- single value holds every case)
case_columns as (
    select 1 as ord, 'id' as key, json_agg(case_id order by pos) as value from case_rows
    union all
    select 2, 'rule', json_agg(rule_id order by pos) from case_rows
    union all
    select 3, 'severity', json_agg(severity order by pos) from case_rows
    union all
    select 4, 'status', json_agg(status order by pos) from case_rows
    union all
    select 5, 'patient', json_agg(patient_id order by pos) from case_rows
    union all
    select 6, 'site', json_agg(site_idx order by pos) from case_rows
    union all
    select 7, 'prescriber', json_agg(prescriber_idx order by pos) from case_rows
    union all
    select 8, 'date', json_agg(case_date - date '1970-01-01' order by pos) from case_rows
    union all
    select 9, 'summary', json_agg(summary order by pos) from case_rows
    union all
    select 10, 'review', json_agg(review order by pos) from case_rows
    union all
    select 11, 'first', json_agg(first_seen_run order by pos) from case_rows
    union all
    select 12, 'last', json_agg(
        case when status = 'resolved' then last_evaluated_run else %(run_id)s end order by pos
    ) from case_rows
    union all
    select 13, 'index', json_agg(index_date - date '1970-01-01' order by pos) from case_rows
),

-- the flat evidence array in chunks of 10,000 cases, in order
evidence_chunks as (
    select e.pos / 10000 as chunk, string_agg(
        concat_ws(',', e.pos, e.kind, e.start_on - date '1970-01-01',
                  e.end_on - date '1970-01-01', l.idx), ','
        order by e.pos, e.start_on, e.kind, l.idx) as value
    from evidence as e
    inner join labels as l on l.label = e.label
    group by e.pos / 10000
)

-- part 0: the case columns (key, JSON array); 1: evidence chunks (the
-- items of one flat JSON array); 2: the lookups (JSON object)
select 0 as part, ord, key, coalesce(value::text, '[]') as value from case_columns
union all
select 1, chunk, null, value from evidence_chunks
union all
select 2, 0, 'lookups', json_build_object(
    'site', (select coalesce(json_agg(site_id order by idx), '[]') from sites),
    'prescriber', (select coalesce(json_agg(prescriber_id order by idx), '[]') from prescribers),
    'label', (select coalesce(json_agg(label order by idx), '[]') from labels)
)::text
order by part, ord
