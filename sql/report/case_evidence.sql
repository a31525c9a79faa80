-- The evidence rows of cases, as the dashboard's timeline draws them: each
-- "table:id" of a case's evidence, joined to its current source row. Kinds:
-- 0 fill (a bar of its covered days), 1 session, 2 event, 3 diagnosis,
-- 4 assessment. The audit runs it for every case (a full audit) or for the
-- touched patients' cases (an incremental one: rx_touched), and packs the rows
-- per case into audit.case_evidence. Ids are unique within a source, so a row
-- is found by its id and the case's patient.
with picked as (
    select c.case_id, c.patient_id, c.evidence
    from audit.cases as c
    where %(all)s::boolean or c.patient_id in (select t.patient_id from rx_touched as t)
),

evidence_ids as (
    select p.case_id, p.patient_id, split_part(e, ':', 1) as tbl, substr(e, strpos(e, ':') + 1) as id
    from picked as p
    cross join lateral unnest(string_to_array(p.evidence, ';')) as e
)

select ev.case_id, ev.patient_id, 0 as kind, coalesce(fc.cover_start, rx.filled_on) as start_on,
       coalesce(fc.cover_end, rx.filled_on + rx.days_supply - 1) as end_on,
       coalesce(initcap(df.ingredient) || ': ', '') || rx.drug_name
       || coalesce(' ' || audit.num(coalesce(rx.daily_dose_mg,
              rx.strength_mg * rx.quantity / rx.days_supply)) || ' mg/day', '') as label
from evidence_ids as ev
inner join core.prescriptions as rx
    on ev.tbl = 'prescriptions' and rx.rx_id = ev.id and rx.patient_id = ev.patient_id
   and rx.is_current
-- the fill day the row belongs to (its covered days, carried forward)
left join lateral (
    select f.ingredient, f.filled_on from core.drug_fills as f
    where f.rx_id = rx.rx_id and f.patient_id = rx.patient_id and f.is_fill order by f.ingredient limit 1
) as df on true
left join core.fill_coverage as fc
    on fc.patient_id = rx.patient_id and fc.ingredient = df.ingredient
   and fc.filled_on = df.filled_on
union all
select ev.case_id, ev.patient_id, 1, s.session_date, s.session_date, s.modality || ' session'
from evidence_ids as ev
inner join core.therapy_sessions as s
    on ev.tbl = 'therapy_sessions' and s.session_id = ev.id and s.patient_id = ev.patient_id
   and s.is_current
union all
select ev.case_id, ev.patient_id, 2, e.event_date, e.event_date, e.event_type
from evidence_ids as ev
inner join core.clinical_events as e
    on ev.tbl = 'clinical_events' and e.event_id = ev.id and e.patient_id = ev.patient_id
   and e.is_current
union all
select ev.case_id, ev.patient_id, 3, d.diagnosed_on, d.diagnosed_on, d.code_system || ' ' || d.code
from evidence_ids as ev
inner join core.diagnoses as d
    on ev.tbl = 'diagnoses' and d.diagnosis_id = ev.id and d.patient_id = ev.patient_id
   and d.is_current
union all
select ev.case_id, ev.patient_id, 4, a.assessed_on, a.assessed_on, a.instrument || ' ' || a.score
from evidence_ids as ev
inner join core.assessments as a
    on ev.tbl = 'assessments' and a.assessment_id = ev.id and a.patient_id = ev.patient_id
   and a.is_current
