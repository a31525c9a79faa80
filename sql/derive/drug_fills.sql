-- Cohort patients' fills of a recognised ingredient, dated on or before as_of.
-- An RXNORM row whose code is an ingredient RXCUI of the policy maps to that
-- ingredient only; every other row maps by name (a combination name may map
-- to several ingredients). daily_dose_mg: the sig's dose when known, else
-- strength x quantity / days supply; NULL when neither can be computed.
with fills as (
    select rx.*
    from core.prescriptions as rx
    inner join core.ptsd_cohort as c on c.patient_id = rx.patient_id
    where rx.is_current
      and rx.filled_on <= %(as_of)s
),

by_code as (
    select
        f.rx_id,
        i.ingredient
    from fills as f
    inner join core.policy_ingredients as i
        on f.drug_code_system = 'RXNORM' and f.drug_code = i.rxcui
),

by_name as (
    select
        f.rx_id,
        m.ingredient
    from fills as f
    inner join core.drug_name_map as m on m.drug_name = f.drug_name
    where not exists (select 1 from by_code as b where b.rx_id = f.rx_id)
),

mapped as (
    select rx_id, ingredient, true as matched_by_code from by_code
    union all
    select rx_id, ingredient, false as matched_by_code from by_name
)

select
    f.rx_id,
    f.patient_id,
    m.ingredient,
    i.drug_class,
    i.first_line,
    i.min_mg,
    i.max_mg,
    m.matched_by_code,
    f.filled_on,
    f.days_supply,
    coalesce(f.daily_dose_mg, f.strength_mg * f.quantity / f.days_supply) as daily_dose_mg,
    f.setting,
    f.site_id,
    f.prescriber_id,
    not (f.setting = 'procedure' or (f.setting = 'inpatient' and f.days_supply <= 1))
        as is_eligible
from mapped as m
inner join fills as f on f.rx_id = m.rx_id
inner join core.policy_ingredients as i on i.ingredient = m.ingredient
