-- PRZ-DOSE: per prazosin trial, the first fill day's prescribed dose (the sum
-- of the sig doses its rows give; the smallest on a titration day; untested
-- when none gives one) above prazosin_start_max_mg (low), or any fill day's
-- daily dose above prazosin_max_mg (info: within the doses studied in men),
-- prazosin_high_mg (low: above the doses studied) or prazosin_very_high_mg
-- (medium). The highest severity met wins (policies before 2027.2 set
-- prazosin_high_mg to prazosin_max_mg, so that above it is low). Excluded: hypertension or BPH (bp_icd10cm_prefixes)
-- diagnosed on or before the trial end with no nightmare finding on or before
-- it (prazosin was for blood pressure or the prostate); hospice on or before
-- the case date. Case key: patient, trial start; case_date: the first fill day
-- breaking a limit.
with fills as (
    select
        f.*,
        t.trial_start,
        t.trial_end,
        f.filled_on = t.trial_start and f.start_sig_mg > %(prazosin_start_max_mg)s::numeric
            as breaks_start,
        f.daily_dose_mg > %(prazosin_max_mg)s::numeric as breaks_max,
        f.daily_dose_mg > %(prazosin_high_mg)s::numeric as breaks_high,
        f.daily_dose_mg > %(prazosin_very_high_mg)s::numeric as breaks_very_high
    from core.fill_coverage as f
    inner join core.med_trials as t using (patient_id, ingredient, trial_no)
    where f.ingredient = 'prazosin'
),

trials as (
    select
        patient_id,
        trial_start,
        min(trial_end) as trial_end,
        coalesce(bool_or(breaks_start), false) as any_start,
        coalesce(bool_or(breaks_max), false) as any_max,
        coalesce(bool_or(breaks_high), false) as any_high,
        coalesce(bool_or(breaks_very_high), false) as any_very_high,
        max(start_sig_mg) filter (where breaks_start) as start_mg,
        max(daily_dose_mg) as top_mg,
        min(filled_on) filter (where breaks_start or breaks_max) as case_date,
        string_agg('prescriptions:' || array_to_string(rx_ids, ';prescriptions:'), ';'
                   order by filled_on) filter (where breaks_start or breaks_max) as evidence,
        (array_agg(site_id order by filled_on) filter (where breaks_start or breaks_max))[1]
            as site_id,
        (array_agg(prescriber_id order by filled_on) filter (where breaks_start or breaks_max))[1]
            as prescriber_id
    from fills
    group by patient_id, trial_start
),

judged as (
    select
        t.*,
        (select string_agg('diagnoses:' || d.diagnosis_id, ';' order by d.diagnosed_on, d.diagnosis_id)
         from core.diagnoses as d
         where d.is_current and d.patient_id = t.patient_id and d.code_system = 'ICD10CM'
           and d.diagnosed_on <= t.trial_end
           and audit.has_prefix(audit.icd(d.code), %(bp_icd10cm_prefixes)s::text[])) as bp_evidence,
        exists (
            select 1 from core.nightmare_findings as n
            where n.patient_id = t.patient_id and n.found_on <= t.trial_end
        ) as nightmares,
        h.hospice_on <= t.case_date + %(hospice_lookahead_days)s::integer as hospice
    from trials as t
    left join core.hospice as h on h.patient_id = t.patient_id
    where t.any_start or t.any_max
)

select
    audit.case_id('PRZ-DOSE', j.patient_id, audit.iso(j.trial_start)) as case_id,
    'PRZ-DOSE' as rule_id,
    case when j.any_very_high then 'medium'
         when j.any_high or j.any_start then 'low'
         else 'info' end as severity,
    case when (j.bp_evidence is not null and not j.nightmares) or coalesce(j.hospice, false)
         then 'excluded' else 'open' end as status,
    j.patient_id,
    j.site_id,
    j.prescriber_id,
    j.case_date,
    concat_ws('; ',
        case when j.any_start then format(
            'Prazosin started %%s at %%s mg/day (start at %%s mg)',
            audit.iso(j.trial_start), audit.num(j.start_mg),
            audit.num(%(prazosin_start_max_mg)s::numeric)) end,
        case when j.any_max then format(
            'Prazosin %%s mg/day, above %%s mg',
            audit.num(j.top_mg),
            audit.num(case when j.any_very_high then %(prazosin_very_high_mg)s::numeric
                           when j.any_high then %(prazosin_high_mg)s::numeric
                           else %(prazosin_max_mg)s::numeric end)) end
    )
    || case
           when j.bp_evidence is not null and not j.nightmares
               then ' (excluded: hypertension or prostate diagnosis, no nightmares)'
           when j.hospice then ' (excluded: hospice or palliative care)'
           else ''
       end as summary,
    concat_ws(';', j.evidence,
              case when j.bp_evidence is not null and not j.nightmares then j.bp_evidence end)
        as evidence
from judged as j
