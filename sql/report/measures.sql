-- Rule measures of a run, per rule, quarter and site (site_id 'ALL': all
-- sites), and per prescriber for cases that name one.
--   denominator: cohort patients with any prescription, session or diagnosis
--                at the site in the quarter (diagnoses count at the patient's
--                home site), together with the patients counted in any
--                rule's numerator there, so a rate never exceeds 1;
--   numerator:   distinct patients with an open case of the rule, of a
--                severity other than info, whose case_date falls in the
--                quarter, at the case's site;
--   rate, 95 percent Wilson interval; outlier: a site whose interval lies wholly
--   above the all-sites rate of the same rule and quarter, with at least the
--   policy's outlier_min_numerator patients (one patient is not a pattern);
--   numerator_after_review, rate_after_review: the same patients, less those
--                whose every such case's reviews agree on, or a lead settled
--                them as, false_positive or justified (review.disposition: an
--                unsettled conflict still counts), over the same denominator.
with cases as (
    -- the run's open cases: every case not resolved is a finding of this audit
    select c.rule_id, c.patient_id, c.site_id, coalesce(c.prescriber_id, '') as prescriber_id,
           date_trunc('quarter', c.case_date)::date as period,
           -- (only a reviewed case has a disposition to ask for)
           not exists (select 1 from report.reviews as v where v.case_id = c.case_id)
           or coalesce(review.disposition(c.case_id), '')
               not in ('false_positive', 'justified') as kept
    from audit.cases as c
    where c.status = 'open' and c.severity <> 'info' and c.case_date <= %(as_of)s::date
),

-- patients counted once per site and once for all sites: core.patient_sites
-- (its count table), and (core.case_sites) the patients of open cases not
-- otherwise seen there
site_den as (
    select period, site_id, sum(n)::integer as denominator
    from (
        select period, site_id, patients as n from core.patient_sites_counts
        union all
        select period, site_id, 1 from core.case_sites where level = 'site'
    ) as x
    group by period, site_id
    union all
    select period, 'ALL', sum(n)::integer
    from (
        select period, patients as n from core.patient_sites_counts where first_in_period
        union all
        select period, 1 from core.case_sites where level = 'all'
    ) as x
    group by period
),

prescriber_den as (
    select period, site_id, prescriber_id, sum(n)::integer as denominator
    from (
        select period, site_id, prescriber_id, patients as n
        from core.patient_prescribers_counts
        union all
        select period, site_id, prescriber_id, 1
        from core.case_sites where level = 'prescriber'
    ) as x
    group by period, site_id, prescriber_id
),

-- distinct patients, counted in two steps (distinct rows, then count(*))
site_num as (
    select rule_id, period, site_id, count(*)::integer as numerator,
           count(*) filter (where kept)::integer as kept
    from (
        select rule_id, period, site_id, patient_id, bool_or(kept) as kept from cases
        group by rule_id, period, site_id, patient_id
    ) as d
    group by rule_id, period, site_id
    union all
    select rule_id, period, 'ALL', count(*)::integer, count(*) filter (where kept)::integer
    from (
        select rule_id, period, patient_id, bool_or(kept) as kept from cases
        group by rule_id, period, patient_id
    ) as d
    group by rule_id, period
),

prescriber_num as (
    select rule_id, period, site_id, prescriber_id, count(*)::integer as numerator,
           count(*) filter (where kept)::integer as kept
    from (
        select rule_id, period, site_id, prescriber_id, patient_id, bool_or(kept) as kept
        from cases where prescriber_id <> ''
        group by rule_id, period, site_id, prescriber_id, patient_id
    ) as d
    group by rule_id, period, site_id, prescriber_id
),

prescription_rules as (
    select distinct rule_id from audit.cases
    where status <> 'resolved' and prescriber_id is not null
),

rows as (
    select r.rule_id, d.period, d.site_id, '' as prescriber_id, d.denominator,
           coalesce(n.numerator, 0) as numerator, coalesce(n.kept, 0) as kept
    from audit.rules as r
    cross join site_den as d
    left join site_num as n
        on n.rule_id = r.rule_id and n.period = d.period and n.site_id = d.site_id
    union all
    select r.rule_id, d.period, d.site_id, d.prescriber_id, d.denominator,
           coalesce(n.numerator, 0), coalesce(n.kept, 0)
    from prescription_rules as r
    cross join prescriber_den as d
    left join prescriber_num as n
        on n.rule_id = r.rule_id and n.period = d.period and n.site_id = d.site_id
       and n.prescriber_id = d.prescriber_id
),

rated as (
    select
        rows.*,
        rows.numerator::numeric / rows.denominator as rate,
        audit.wilson_low(rows.numerator, rows.denominator) as ci_low,
        audit.wilson_high(rows.numerator, rows.denominator) as ci_high
    from rows
    where rows.denominator > 0
)

select
    %(run_id)s as run_id,
    a.rule_id as measure_id,
    'rule' as kind,
    to_char(a.period, 'YYYY-"Q"Q') as period,
    a.site_id,
    a.prescriber_id,
    a.denominator,
    a.numerator,
    round(a.rate, 6) as rate,
    round(a.ci_low, 6) as ci_low,
    round(a.ci_high, 6) as ci_high,
    round(t.rate, 6) as all_sites_rate,
    a.site_id <> 'ALL' and a.numerator >= %(outlier_min_numerator)s
        and round(a.ci_low, 9) > round(t.rate, 9) as outlier,
    a.kept as numerator_after_review,
    round(a.kept::numeric / a.denominator, 6) as rate_after_review
from rated as a
inner join rated as t
    on t.rule_id = a.rule_id and t.period = a.period and t.site_id = 'ALL'
   and t.prescriber_id = ''
