-- BZD-PTSD: a benzodiazepine episode that reaches the PTSD index date and is
-- not incidental (exposure above bzd_incidental_max_days). Severity high for
-- long-term use (exposure of bzd_long_term_days or more), medium for a new
-- start (the episode starts on or after the index date, with no covered day
-- of a non-incidental episode in the new_start_lookback_days before it, and
-- those days within the history), else low. Excluded: withdrawal codes dated
-- [start - exclusion_lookback_days, end]; epilepsy or RBD at any date up to
-- the end; hospice or palliative care on or before the end.
-- Case key: patient, episode start; case_date: greatest(episode start, index date).
with episodes as (
    select
        e.*,
        c.index_date
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
        f.prescriber_id
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
        bool_or(audit.has_prefix(audit.icd(d.code), %(withdrawal_icd10cm_prefixes)s::text[]))
            as withdrawal,
        bool_or(audit.has_prefix(audit.icd(d.code), %(chronic_icd10cm_prefixes)s::text[]))
            as chronic,
        string_agg('diagnoses:' || d.diagnosis_id, ';' order by d.diagnosed_on, d.diagnosis_id)
            as evidence
    from episodes as e
    inner join core.diagnoses as d
        on d.patient_id = e.patient_id
       and d.is_current
       and d.code_system = 'ICD10CM'
       and d.diagnosed_on <= e.episode_end
       and d.diagnosed_on <= %(as_of)s::date
       and (
           (audit.has_prefix(audit.icd(d.code), %(withdrawal_icd10cm_prefixes)s::text[])
            and d.diagnosed_on >= e.episode_start - %(exclusion_lookback_days)s::integer)
           or audit.has_prefix(audit.icd(d.code), %(chronic_icd10cm_prefixes)s::text[])
       )
    group by e.patient_id, e.episode_no
),

judged as (
    select
        e.*,
        cf.site_id,
        cf.prescriber_id,
        greatest(e.episode_start, e.index_date) as case_date,
        case
            when e.exposure_days >= %(bzd_long_term_days)s::integer then 'high'
            when e.episode_start >= e.index_date
             and e.episode_start - %(new_start_lookback_days)s::integer >= %(history_start)s::date
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
        end as severity,
        coalesce(x.withdrawal, false) as withdrawal,
        coalesce(x.chronic, false) as chronic,
        h.hospice_on <= e.episode_end as hospice,
        x.evidence as exclusion_evidence,
        h.source as hospice_evidence
    from episodes as e
    inner join case_fill as cf on cf.patient_id = e.patient_id and cf.episode_no = e.episode_no
    left join exclusions as x on x.patient_id = e.patient_id and x.episode_no = e.episode_no
    left join core.hospice as h on h.patient_id = e.patient_id
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
    case j.severity
        when 'high' then format(
            'Long-term benzodiazepine use (%%s): %%s days covered since the PTSD diagnosis of %%s, episode from %%s to %%s, %%s fill day(s)',
            j.ingredients, j.exposure_days, audit.iso(j.index_date), audit.iso(j.episode_start),
            audit.iso(j.episode_end), j.n_fill_days)
        when 'medium' then format(
            'New benzodiazepine start (%%s) on %%s after the PTSD diagnosis of %%s: %%s fill day(s), %%s days covered to %%s',
            j.ingredients, audit.iso(j.episode_start), audit.iso(j.index_date), j.n_fill_days,
            j.exposure_days, audit.iso(j.episode_end))
        else format(
            'Benzodiazepine (%%s) after the PTSD diagnosis of %%s: episode from %%s to %%s, %%s fill day(s), %%s days covered since the diagnosis',
            j.ingredients, audit.iso(j.index_date), audit.iso(j.episode_start),
            audit.iso(j.episode_end), j.n_fill_days, j.exposure_days)
    end
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
from judged as j
