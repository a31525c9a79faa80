-- BZD-PTSD: a benzodiazepine episode that reaches the PTSD index date and is
-- not incidental (exposure above bzd_incidental_max_days). Severity high for
-- long-term use (exposure of bzd_long_term_days or more), medium for a new
-- start (the episode starts on or after the index date, with no covered day
-- of a non-incidental episode in the new_start_lookback_days before it, and
-- those days within the patient's history), else low; info for a completed
-- tapered episode (bzd_episodes.is_tapered) or when the patient's only PTSD
-- diagnosis date is more than bzd_dx_lookback_days before the case date.
-- Excluded: withdrawal codes (ICD-10-CM prefixes, SNOMED CT exact) dated
-- [start - exclusion_lookback_days, end]; epilepsy or RBD (ICD-10-CM
-- prefixes, SNOMED CT exact) at any date up to the end; hospice or palliative
-- care up to hospice_lookahead_days after the end. Seizure products are in no
-- episode (drug_fills.is_seizure). The prescriber: the episode's earliest
-- fill day's (bzd_prescriber = episode_start), or its first on or after the
-- index date (index_date, policies before 2027.2); the site: the latter's.
-- Case key: patient, episode start; case_date: greatest(episode start, index date).
with episodes as (
    select
        e.*,
        c.index_date,
        c.history_start,
        c.single_dx_on
    from core.bzd_episodes as e
    inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
    where e.episode_end >= c.index_date
      and e.exposure_days > %(bzd_incidental_max_days)s::integer
),

case_fill as (
    -- the episode's first fill day on or after the index date, else its first
    select distinct on (e.patient_id, e.episode_no)
        e.patient_id,
        e.episode_no,
        f.site_id,
        case when %(bzd_prescriber)s::text = 'episode_start' then e.first_prescriber_id
             else f.prescriber_id end as prescriber_id
    from episodes as e
    inner join core.bzd_fills as f
        on f.patient_id = e.patient_id and f.episode_no = e.episode_no
    order by e.patient_id, e.episode_no, (f.filled_on >= e.index_date) desc, f.filled_on,
             f.ingredient
),

exclusions as (
    select
        e.patient_id,
        e.episode_no,
        bool_or(x.withdrawal) as withdrawal,
        bool_or(not x.withdrawal) as chronic,
        string_agg('diagnoses:' || x.diagnosis_id, ';' order by x.diagnosed_on, x.diagnosis_id)
            as evidence
    from episodes as e
    cross join lateral (
        select
            d.diagnosis_id,
            d.diagnosed_on,
            case when d.code_system = 'ICD10CM'
                 then audit.has_prefix(audit.icd(d.code), %(withdrawal_icd10cm_prefixes)s::text[])
                 else audit.clean_code(d.code) = any(%(withdrawal_snomed)s::text[]) end as withdrawal,
            case when d.code_system = 'ICD10CM'
                 then audit.has_prefix(audit.icd(d.code), %(chronic_icd10cm_prefixes)s::text[])
                 else audit.clean_code(d.code) = any(%(chronic_snomed)s::text[]) end as chronic
        from core.diagnoses as d
        where d.patient_id = e.patient_id
          and d.is_current
          and d.diagnosed_on <= e.episode_end
          and d.diagnosed_on <= %(as_of)s::date
    ) as x
    where (x.withdrawal and x.diagnosed_on >= e.episode_start - %(exclusion_lookback_days)s::integer)
       or (x.chronic and not x.withdrawal)
    group by e.patient_id, e.episode_no
),

judged as (
    select
        e.*,
        cf.site_id,
        cf.prescriber_id,
        greatest(e.episode_start, e.index_date) as case_date,
        e.is_tapered and not e.is_ongoing as tapered_off,
        %(bzd_dx_lookback_days)s::integer > 0
        and e.single_dx_on < greatest(e.episode_start, e.index_date)
                             - %(bzd_dx_lookback_days)s::integer as remote_dx,
        case
            when e.exposure_days >= %(bzd_long_term_days)s::integer then 'high'
            when e.episode_start >= e.index_date
             and e.episode_start - %(new_start_lookback_days)s::integer >= e.history_start
             and not exists (
                 select 1
                 from core.bzd_fills as p
                 inner join core.bzd_episodes as pe
                     on pe.patient_id = p.patient_id and pe.episode_no = p.episode_no
                 where p.patient_id = e.patient_id
                   and pe.covered_days > %(bzd_incidental_max_days)s::integer
                   and p.cover_end >= e.episode_start - %(new_start_lookback_days)s::integer
                   and p.cover_start <= e.episode_start - 1
             ) then 'medium'
            else 'low'
        end as core_severity,
        coalesce(x.withdrawal, false) as withdrawal,
        coalesce(x.chronic, false) as chronic,
        h.hospice_on <= e.episode_end + %(hospice_lookahead_days)s::integer as hospice,
        x.evidence as exclusion_evidence,
        h.source as hospice_evidence
    from episodes as e
    inner join case_fill as cf on cf.patient_id = e.patient_id and cf.episode_no = e.episode_no
    left join exclusions as x on x.patient_id = e.patient_id and x.episode_no = e.episode_no
    left join core.hospice as h on h.patient_id = e.patient_id
),

graded as (
    -- a completed taper and a single remote diagnosis override the others
    select
        j.*,
        case when j.tapered_off or coalesce(j.remote_dx, false) then 'info'
             else j.core_severity end as severity
    from judged as j
)

select
    audit.case_id('BZD-PTSD', j.patient_id, audit.iso(j.episode_start)) as case_id,
    'BZD-PTSD' as rule_id,
    j.severity,
    case when j.withdrawal or j.chronic or coalesce(j.hospice, false) then 'excluded' else 'open' end
        as status,
    j.patient_id,
    j.site_id,
    j.prescriber_id,
    j.case_date,
    case
        when j.tapered_off then format(
            'Benzodiazepine tapered off (%%s): from %%s to %%s mg/day, episode from %%s to %%s, %%s days covered since the PTSD diagnosis of %%s',
            j.ingredients, audit.num(j.taper_top_mg), audit.num(j.taper_last_mg),
            audit.iso(j.episode_start), audit.iso(j.episode_end), j.exposure_days,
            audit.iso(j.index_date))
        when j.core_severity = 'high' then format(
            'Long-term benzodiazepine use (%%s): %%s days covered since the PTSD diagnosis of %%s, episode from %%s to %%s, %%s fill day(s)',
            j.ingredients, j.exposure_days, audit.iso(j.index_date), audit.iso(j.episode_start),
            audit.iso(j.episode_end), j.n_fill_days)
        when j.core_severity = 'medium' then format(
            'New benzodiazepine start (%%s) on %%s after the PTSD diagnosis of %%s: %%s fill day(s), %%s days covered to %%s',
            j.ingredients, audit.iso(j.episode_start), audit.iso(j.index_date), j.n_fill_days,
            j.exposure_days, audit.iso(j.episode_end))
        else format(
            'Benzodiazepine (%%s) after the PTSD diagnosis of %%s: episode from %%s to %%s, %%s fill day(s), %%s days covered since the diagnosis',
            j.ingredients, audit.iso(j.index_date), audit.iso(j.episode_start),
            audit.iso(j.episode_end), j.n_fill_days, j.exposure_days)
    end
    || case when j.is_tapered and j.is_ongoing
            then format('; taper under way (%%s to %%s mg/day)', audit.num(j.taper_top_mg),
                        audit.num(j.taper_last_mg))
            else '' end
    || case when coalesce(j.remote_dx, false)
            then format('; PTSD recorded once, on %%s, over %%s days before', audit.iso(j.single_dx_on),
                        %(bzd_dx_lookback_days)s::integer)
            else '' end
    || case
           when j.withdrawal or j.chronic or coalesce(j.hospice, false) then
               ' (excluded: ' || concat_ws(', ',
                   case when j.withdrawal then 'alcohol or sedative withdrawal' end,
                   case when j.chronic then 'epilepsy or REM sleep behaviour disorder' end,
                   case when j.hospice then 'hospice or palliative care' end) || ')'
           else ''
       end as summary,
    concat_ws(';', j.evidence, j.exclusion_evidence,
              case when j.hospice then j.hospice_evidence end) as evidence
from graded as j
