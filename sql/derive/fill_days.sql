-- Fill days: the fills of one patient and ingredient dated on the same day
-- are one fill day. Its daily dose is the sum of the rows' known doses
-- (unknown when none is known), its supply the largest of their supplies.
-- When the largest supply is more than supply_mismatch_factor times the
-- smallest, the rows are a titration (a starter supply beside the target
-- dose): the daily dose is then the largest known dose, not the sum. A
-- paroxetine day is CR when any of its rows is; citalopram's maximum is
-- citalopram_older_max_mg from citalopram_older_age. start_sig_mg: the sum of
-- the sig doses the rows give (the smallest of them on a titration day), for
-- the prazosin start test.
with days as (
    select
        f.patient_id,
        f.ingredient,
        f.filled_on,
        min(f.drug_class) as drug_class,
        bool_or(f.first_line) as first_line,
        min(f.min_mg) as ingredient_min_mg,
        min(f.max_mg) as ingredient_max_mg,
        max(f.supply) as supply,
        max(f.supply) > min(f.supply) * %(supply_mismatch_factor)s::numeric as is_titration,
        sum(f.dose_mg) as dose_sum,
        max(f.dose_mg) as dose_max,
        sum(f.sig_dose_mg) as sig_sum,
        min(f.sig_dose_mg) as sig_min,
        bool_or(f.is_cr) as is_cr,
        bool_or(f.is_older) as is_older,
        count(*)::integer as n_rows,
        array_agg(f.rx_id order by f.rx_id) as rx_ids,
        (array_agg(f.site_id order by f.rx_id))[1] as site_id,
        (array_agg(f.prescriber_id order by f.rx_id))[1] as prescriber_id
    from core.drug_fills as f
    where f.is_fill
    group by f.patient_id, f.ingredient, f.filled_on
)

select
    d.patient_id,
    d.ingredient,
    d.filled_on,
    d.drug_class,
    d.first_line,
    d.supply,
    d.is_titration,
    case when d.is_titration then d.dose_max else d.dose_sum end as daily_dose_mg,
    case when d.is_titration then d.sig_min else d.sig_sum end as start_sig_mg,
    d.is_cr,
    case when d.is_cr then %(paroxetine_cr_min_mg)s::numeric else d.ingredient_min_mg end
        as min_mg,
    case
        when d.is_cr then %(paroxetine_cr_max_mg)s::numeric
        when d.ingredient = 'citalopram' and d.is_older
            then least(d.ingredient_max_mg, %(citalopram_older_max_mg)s::numeric)
        else d.ingredient_max_mg
    end as max_mg,
    d.n_rows,
    d.rx_ids,
    d.site_id,
    d.prescriber_id
from days as d
