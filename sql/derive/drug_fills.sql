-- Cohort patients' fills of a recognised ingredient, dated on or before as_of.
-- An RXNORM row whose code is an ingredient RXCUI of the policy maps to that
-- ingredient only; every other row maps by name (a combination name may map
-- to several ingredients). daily_dose_mg: the sig's dose when known, else
-- strength x quantity / days supply; NULL when neither can be computed.
-- One pass over the fills: the name map joins only rows the code did not map.
select
    rx.rx_id,
    rx.patient_id,
    i.ingredient,
    i.drug_class,
    i.first_line,
    i.min_mg,
    i.max_mg,
    by_code.ingredient is not null as matched_by_code,
    rx.filled_on,
    rx.days_supply,
    coalesce(rx.daily_dose_mg, rx.strength_mg * rx.quantity / rx.days_supply) as daily_dose_mg,
    rx.setting,
    rx.site_id,
    rx.prescriber_id,
    not (rx.setting = 'procedure' or (rx.setting = 'inpatient' and rx.days_supply <= 1))
        as is_eligible
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
