-- The dashboard's cases as JSON, built in SQL and returned in rows the
-- caller streams into the page: the names of a case's fields, then chunks of
-- 10,000 cases, each case an array of its fields in that order (the page
-- turns them into columns), then the lookups. Sites,
-- prescribers and evidence labels are dictionary-encoded (an index into the
-- lookups), dates are days since 1970-01-01. A case's evidence is the array
-- the audit keeps in audit.case_evidence: four numbers per evidence row (kind
-- 0 fill, a bar of its covered days; 1 session; 2 event; 3 diagnosis;
-- 4 assessment; first day; last day; label index). A case that is not
-- resolved is a finding of the latest audit: its last-seen run is this run.
with picked as (
    select
        c.case_id, c.rule_id, c.severity, c.status, c.patient_id, c.site_id, c.prescriber_id,
        c.case_date, c.summary, c.first_seen_run, c.evidence,
        case when c.status = 'resolved' then c.last_evaluated_run else %(run_id)s end
            as last_seen_run,
        coalesce(v.status, '') as review,
        (row_number() over (
            order by c.rule_id collate "C", c.case_date, c.patient_id collate "C",
                     c.case_id collate "C") - 1)::integer as pos
    from audit.cases as c -- every case: this run's findings and the resolved ones
    left join lateral (
        select x.status from review.reviews as x
        where x.case_id = c.case_id order by x.review_id desc limit 1
    ) as v on true
),

sites as (
    select site_id, (row_number() over (order by site_id collate "C") - 1)::integer as idx
    from (select distinct site_id from picked where site_id is not null) as s
),

-- the care pathway's next steps: a handful of texts, dictionary-encoded
steps as (
    select next_step, (row_number() over (order by next_step collate "C") - 1)::integer as idx
    from (select distinct next_step from audit.pathway) as s
),

prescribers as (
    select prescriber_id,
           (row_number() over (order by prescriber_id collate "C") - 1)::integer as idx
    from (select distinct prescriber_id from picked where prescriber_id is not null) as s
),

case_rows as (
    select
        p.*,
        coalesce(e.items, '[]') as items,
        coalesce(s.idx, -1) as site_idx,
        coalesce(pr.idx, -1) as prescriber_idx,
        pc.index_date,
        coalesce(st.idx, -1) as step_idx,
        pw.next_step_reason as step_reason
    from picked as p
    left join audit.case_evidence as e on e.case_id = p.case_id
    left join sites as s on s.site_id = p.site_id
    left join prescribers as pr on pr.prescriber_id = p.prescriber_id
    left join core.ptsd_cohort as pc on pc.patient_id = p.patient_id
    left join audit.pathway as pw on pw.patient_id = p.patient_id
    left join steps as st on st.next_step = pw.next_step
),

-- one row per 10,000 cases (no single value holds every case)
chunks as (
    select pos / 10000 as chunk, json_agg(json_build_array(
        case_id, rule_id, severity, status, patient_id, site_idx, prescriber_idx,
        case_date - date '1970-01-01', summary, review, first_seen_run, last_seen_run,
        index_date - date '1970-01-01', items::json, step_idx, evidence, step_reason
    ) order by pos)::text as value
    from case_rows
    group by pos / 10000
)

-- part 0: the names of a case's fields, in the order of its array; 1: the
-- chunks of cases; 2: the lookups (a JSON object)
select 0 as part, 0 as ord, json_build_array(
    'id', 'rule', 'severity', 'status', 'patient', 'site', 'prescriber', 'date', 'summary',
    'review', 'first', 'last', 'index', 'evidence', 'step', 'evidence_ids',
    'step_reason')::text as value
union all
select 1, chunk, value from chunks
union all
select 2, 0, json_build_object(
    'site', (select coalesce(json_agg(site_id order by idx), '[]') from sites),
    'prescriber', (select coalesce(json_agg(prescriber_id order by idx), '[]') from prescribers),
    'label', (select coalesce(json_agg(label order by idx), '[]') from audit.evidence_labels),
    'step', (select coalesce(json_agg(next_step order by idx), '[]') from steps)
)::text
order by part, ord
