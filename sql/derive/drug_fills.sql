-- Cohort patients' prescription rows of a recognised ingredient, dated on or
-- before as_of, every setting and source type (the MDMA rules read them all).
-- An RXNORM row whose code is an ingredient RXCUI of the policy maps to that
-- ingredient only; every other row maps by name (a combination name may map
-- to several ingredients). batch_no and line_no: where the row came from.
--   dose_mg        the sig's daily dose when known, else strength x quantity /
--                  days supply; NULL when neither can be computed;
--   supply         days_supply, or the supply the dose implies (strength x
--                  quantity / daily dose, rounded down, 1-365) when the two
--                  differ by more than supply_mismatch_factor (supply_mismatch);
--   is_ignored     a procedure row, or an inpatient row of at most one day
--                  (not an antidepressant's, under inpatient_antidepressant_fills);
--   is_vasomotor   paroxetine at most 7.5 mg/day, or Brisdelle: not an antidepressant;
--   is_seizure     a seizure product (clobazam; rectal, nasal or buccal diazepam or
--                  midazolam): part of no benzodiazepine episode;
--   is_order_fill  an `ordered` row that counts as a fill (orders_as_fills: always,
--                  or auto and its batch in order_fill_batches, the batches of
--                  sources that delivered no dispensed or administered row);
--   is_fill        a fill the rules read: not ignored, not reported, not vasomotor,
--                  not a seizure product, not an order that is not a fill;
--   is_cr          paroxetine CR (its own dose range);
--   is_older       citalopram's age test: aged citalopram_older_age or more at the fill;
--   is_older_paroxetine  paroxetine's: aged paroxetine_older_age or more.
with rows as (
    select
        rx.rx_id,
        rx.batch_no,
        rx.line_no,
        rx.patient_id,
        i.ingredient,
        i.drug_class,
        i.first_line,
        i.min_mg,
        i.max_mg,
        rx.drug_name,
        rx.filled_on,
        rx.days_supply,
        rx.quantity,
        rx.daily_dose_mg as sig_dose_mg,
        coalesce(rx.daily_dose_mg, rx.strength_mg * rx.quantity / rx.days_supply) as dose_mg,
        case when rx.strength_mg is not null and rx.quantity is not null
                  and rx.daily_dose_mg is not null
             then greatest(1, least(365, floor(rx.strength_mg * rx.quantity / rx.daily_dose_mg)))
        end::integer as implied_supply,
        rx.setting,
        coalesce(rx.source_type, 'dispensed') as source_type,
        rx.site_id,
        rx.prescriber_id,
        c.age_90_plus
        or extract(year from rx.filled_on)::integer - c.birth_year
           >= %(citalopram_older_age)s::integer as is_older,
        c.age_90_plus
        or extract(year from rx.filled_on)::integer - c.birth_year
           >= %(paroxetine_older_age)s::integer as is_older_paroxetine
    from core.prescriptions as rx
    inner join core.ptsd_cohort as c on c.patient_id = rx.patient_id
    left join core.policy_ingredients as by_code
        on rx.drug_code_system = 'RXNORM' and rx.drug_code = by_code.rxcui
    left join core.drug_name_map as by_name
        on by_code.ingredient is null and by_name.drug_name = rx.drug_name
    inner join core.policy_ingredients as i
        on i.ingredient = coalesce(by_code.ingredient, by_name.ingredient)
    where rx.is_current
      and rx.filled_on <= %(as_of)s
),

flagged as (
    select
        r.*,
        coalesce(r.implied_supply > r.days_supply * %(supply_mismatch_factor)s::numeric
                 or r.days_supply > r.implied_supply * %(supply_mismatch_factor)s::numeric,
                 false) as supply_mismatch,
        r.setting = 'procedure'
        or (r.setting = 'inpatient' and r.days_supply <= 1
            and not (%(inpatient_antidepressant_fills)s::boolean
                     and r.drug_class in ('SSRI', 'SNRI', 'OTHER_AD'))) as is_ignored,
        r.ingredient = any(%(seizure_ingredients)s::text[])
        or (r.ingredient = any(%(seizure_route_ingredients)s::text[])
            and audit.clean_name(r.drug_name) ~* %(seizure_route_pattern)s::text) as is_seizure,
        r.source_type = 'ordered'
        and (%(orders_as_fills)s::text = 'always'
             or (%(orders_as_fills)s::text = 'auto'
                 and r.batch_no = any(%(order_fill_batches)s::integer[]))) as is_order_fill,
        r.ingredient = 'paroxetine'
        and (r.dose_mg <= %(paroxetine_vasomotor_max_mg)s::numeric
             or r.drug_name ~* %(paroxetine_vasomotor_pattern)s::text) as is_vasomotor,
        r.ingredient = 'paroxetine' and r.drug_name ~* %(paroxetine_cr_pattern)s::text as is_cr
    from rows as r
)

select
    f.rx_id,
    f.batch_no,
    f.line_no,
    f.patient_id,
    f.ingredient,
    f.drug_class,
    f.first_line,
    f.min_mg,
    f.max_mg,
    f.filled_on,
    f.days_supply,
    f.quantity,
    case when f.supply_mismatch then f.implied_supply else f.days_supply end as supply,
    f.supply_mismatch,
    f.sig_dose_mg,
    f.dose_mg,
    f.setting,
    f.source_type,
    f.site_id,
    f.prescriber_id,
    f.is_ignored,
    coalesce(f.is_vasomotor, false) as is_vasomotor,
    coalesce(f.is_seizure, false) as is_seizure,
    not f.is_ignored and f.source_type <> 'reported' and not coalesce(f.is_vasomotor, false)
    and not coalesce(f.is_seizure, false) and (f.source_type <> 'ordered' or f.is_order_fill)
        as is_fill,
    coalesce(f.is_cr, false) as is_cr,
    coalesce(f.is_older, false) as is_older,
    coalesce(f.is_older_paroxetine, false) as is_older_paroxetine
from flagged as f
