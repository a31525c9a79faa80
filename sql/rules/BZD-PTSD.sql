-- BZD-PTSD: a benzodiazepine episode that reaches the PTSD index date.
-- Case key: patient, episode start.
with episodes as (
    select
        e.*,
        c.index_date,
        c.home_site_id
    from core.bzd_episodes as e
    inner join core.ptsd_cohort as c on c.patient_id = e.patient_id
    where e.episode_end >= c.index_date
),

case_fill as (
    -- the episode's first fill on or after the index date, else its first fill
    select distinct on (e.patient_id, e.episode_no)
        e.patient_id,
        e.episode_no,
        f.rx_id,
        f.filled_on,
        f.site_id,
        f.prescriber_id,
        f.filled_on >= e.index_date as after_index
    from episodes as e
    inner join core.bzd_fills as f
        on f.patient_id = e.patient_id and f.episode_no = e.episode_no
    order by e.patient_id, e.episode_no, (f.filled_on >= e.index_date) desc, f.filled_on, f.rx_id
),

judged as (
    select
        e.*,
        cf.site_id,
        cf.prescriber_id,
        case when cf.after_index then cf.filled_on else e.index_date end as case_date,
        e.episode_start >= e.index_date
        and not exists (
            select 1
            from core.bzd_fills as p
            where p.patient_id = e.patient_id
              and p.cover_end >= e.episode_start - %(new_start_lookback_days)s::integer
              and p.cover_start <= e.episode_start - 1
        ) as is_new_start,
        exists (
            select 1
            from core.diagnoses as d
            where d.is_current
              and d.patient_id = e.patient_id
              and d.code_system = 'ICD10CM'
              and d.diagnosed_on between e.episode_start - %(exclusion_lookback_days)s::integer
                                     and e.episode_end
              and d.diagnosed_on <= %(as_of)s::date
              and upper(replace(d.code, '.', ''))
                  like any (select p || '%%' from unnest(%(exclusion_icd10cm_prefixes)s::text[]) as p)
        ) as is_excluded
    from episodes as e
    inner join case_fill as cf on cf.patient_id = e.patient_id and cf.episode_no = e.episode_no
)

select
    audit.case_id('BZD-PTSD', j.patient_id, audit.iso(j.episode_start)) as case_id,
    'BZD-PTSD' as rule_id,
    case when j.is_new_start then 'high' else 'medium' end as severity,
    case when j.is_excluded then 'excluded' else 'open' end as status,
    j.patient_id,
    j.site_id,
    j.prescriber_id,
    j.case_date,
    case
        when j.is_new_start then format(
            'New benzodiazepine start (%%s) on %%s after the PTSD diagnosis of %%s: %%s fill(s) covering to %%s',
            j.ingredients, audit.iso(j.episode_start), audit.iso(j.index_date), j.n_fills,
            audit.iso(j.episode_end))
        else format(
            'Benzodiazepine (%%s) continued past the PTSD diagnosis of %%s: episode from %%s to %%s, %%s fill(s); review for taper',
            j.ingredients, audit.iso(j.index_date), audit.iso(j.episode_start),
            audit.iso(j.episode_end), j.n_fills)
    end
    || case when j.is_excluded then ' (excluded: alcohol withdrawal or epilepsy diagnosis)' else '' end
        as summary,
    audit.evidence('prescriptions', j.rx_ids) as evidence
from judged as j
