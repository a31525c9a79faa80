-- Each distinct drug_name of the prescriptions, mapped to the ingredients whose
-- generic or brand name it contains as a whole word (any case). Matching the
-- few distinct names, not every row, keeps the regular expressions cheap.
-- A full audit maps every name the loads brought (core.drug_names, kept by
-- the loader from each file's distinct values): a name no current row holds
-- any more maps harmlessly.
with names as (
    select n.drug_name
    from core.drug_names as n
    where not %(incremental)s::boolean
    union
    -- an incremental audit: only the names of the touched patients' fills
    select rx.drug_name
    from rx_touched as t
    inner join core.prescriptions as rx on rx.patient_id = t.patient_id and rx.is_current
    where %(incremental)s::boolean
)

-- Names are matched after NFKC normalisation with format characters (zero
-- width spaces and joiners, soft hyphens, byte-order marks) removed, so that
-- "alpra\u200bzolam" or a full-width "ｘａｎａｘ" is not hidden from the rules.
select distinct
    n.drug_name,
    dn.ingredient
from names as n
inner join core.policy_drug_names as dn
    on audit.clean_name(n.drug_name) ~* dn.pattern
