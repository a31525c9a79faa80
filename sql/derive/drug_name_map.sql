-- Each distinct drug_name of the prescriptions, mapped to the ingredients whose
-- generic or brand name it contains as a whole word (any case). Matching the
-- few distinct names, not every row, keeps the regular expressions cheap.
with names as (
    select distinct rx.drug_name
    from core.prescriptions as rx
    where rx.is_current
      -- an incremental audit: only the names of the touched patients' fills
      and (not %(incremental)s::boolean or rx.patient_id in (select t.patient_id from rx_touched as t))
)

select distinct
    n.drug_name,
    dn.ingredient
from names as n
inner join core.policy_drug_names as dn
    on n.drug_name ~* dn.pattern
