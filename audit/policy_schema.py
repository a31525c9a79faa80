"""The policy's keys: every section and setting a policy file may hold, its
type and range, and the value sets some settings are checked against."""

from __future__ import annotations

DRUG_CLASSES = ("SSRI", "SNRI", "OTHER_AD", "ALPHA1", "BZD", "MDMA")
#: Classes a policy must have an ingredient of (other antidepressants are optional).
REQUIRED_CLASSES = ("SSRI", "SNRI", "ALPHA1", "BZD", "MDMA")

# key -> (type, minimum, maximum) for scalar settings; ("codes",) for lists.
_DAYS = (int, 1, 3650)
SCHEMA: dict[str, dict[str, tuple]] = {
    "cohort": {
        "ptsd_icd10cm": ("codes",),
        "ptsd_snomed": ("codes",),
        "cohort_min_dates": (int, 1, 100),
    },
    "fills": {
        "supply_mismatch_factor": (float, 1.0, 365),
        "paroxetine_cr_words": ("names",),
        "paroxetine_cr_min_mg": (float, 0.001, 1000),
        "paroxetine_cr_max_mg": (float, 0.001, 1000),
        "paroxetine_vasomotor_max_mg": (float, 0, 1000),
        "paroxetine_vasomotor_names": ("names",),
        "citalopram_older_age": (int, 0, 200),
        "citalopram_older_max_mg": (float, 0.001, 1000),
        "paroxetine_older_age": (int, 0, 200),
        "paroxetine_older_max_mg": (float, 0.001, 1000),
        "paroxetine_cr_older_max_mg": (float, 0.001, 1000),
        "orders_as_fills": ("choice", "auto", "always", "never"),
        "inpatient_antidepressant_fills": (bool,),
        "seizure_ingredients": ("ingredient_names",),
        "seizure_route_ingredients": ("ingredient_names",),
        "seizure_route_words": ("names",),
    },
    "episodes": {
        "episode_gap_days": _DAYS,
        "acute_days": _DAYS,
        "acute_window_days": _DAYS,
        "continuation_days": _DAYS,
        "amm_continuation_days": _DAYS,
        "amm_continuation_window_days": _DAYS,
        "washout_days": (int, 0, 3650),
        "short_history_days": (int, 0, 3650),
        "remission_pcl5_below": (int, 1, 80),
        "pcl5_min_drop": (int, 0, 80),
        "pcl5_baseline_days": _DAYS,
        "caps5_response_fraction": (float, 0, 1),
        "caps5_min_baseline": (int, 0, 80),
        "response_holds_days": (int, 0, 3650),
        "measurement_days": (int, 0, 3650),
        "switch_window_days": (int, 0, 3650),
    },
    "psychotherapy": {
        "tf_modalities": ("modalities",),
        "course_gap_days": _DAYS,
        "tf_min_sessions": (int, 1, 100),
        "tf_min_sessions_by_modality": ("modality_counts",),
        "tf_max_per_day": (int, 1, 10),
        "course_response_days": (int, 0, 3650),
        "course_index_lookback_days": (int, 0, 3650),
        "stabilization_modalities": ("modalities",),
        "stabilization_max_sessions": (int, 1, 100),
    },
    "benzodiazepines": {
        "bzd_episode_gap_days": _DAYS,
        "bzd_incidental_max_days": (int, 0, 3650),
        "bzd_long_term_days": _DAYS,
        "new_start_lookback_days": _DAYS,
        "exclusion_lookback_days": (int, 0, 3650),
        "withdrawal_icd10cm_prefixes": ("codes",),
        "chronic_icd10cm_prefixes": ("codes",),
        "withdrawal_snomed": ("codes",),
        "chronic_snomed": ("codes",),
        "bzd_quantity_caps_supply": (bool,),
        "bzd_taper_fraction": (float, 0, 1),
        "bzd_dx_lookback_days": (int, 0, 36500),
        "bzd_prescriber": ("choice", "episode_start", "index_date"),
    },
    "hospice": {
        "hospice_icd10cm": ("codes",),
        "hospice_lookahead_days": (int, 0, 3650),
    },
    "venlafaxine": {"ven_lookback_days": _DAYS},
    "prazosin": {
        "prazosin_start_max_mg": (float, 0.001, 1000),
        "prazosin_max_mg": (float, 0.001, 1000),
        "prazosin_high_mg": (float, 0.001, 1000),
        "prazosin_very_high_mg": (float, 0.001, 1000),
        "prazosin_tried_min_mg": (float, 0, 1000),
        "bp_icd10cm_prefixes": ("codes",),
        "nightmare_icd10cm": ("codes",),
        "nightmare_prazosin_window_days": _DAYS,
        "nightmare_irt_lookback_days": (int, 0, 3650),
    },
    "measures": {"outlier_min_numerator": (int, 1, 100_000)},
}
#: Code lists given to SQL without dots, upper-case (ICD-10-CM with or without the dot).
ICD_KEYS = ("ptsd_icd10cm", "nightmare_icd10cm", "withdrawal_icd10cm_prefixes",
            "chronic_icd10cm_prefixes", "hospice_icd10cm", "bp_icd10cm_prefixes")  # fmt: skip
#: Code lists that may be empty (a site may know no such code).
EMPTY_ALLOWED = {"ptsd_snomed", "withdrawal_icd10cm_prefixes", "chronic_icd10cm_prefixes",
                 "hospice_icd10cm", "bp_icd10cm_prefixes", "paroxetine_cr_words",
                 "paroxetine_vasomotor_names", "withdrawal_snomed", "chronic_snomed",
                 "seizure_ingredients", "seizure_route_ingredients",
                 "seizure_route_words"}  # fmt: skip
INGREDIENT_KEYS = {"class", "rxcui", "names", "min_mg", "max_mg", "first_line"}
TF_MODALITIES_ALLOWED = {"PE", "CPT", "EMDR", "NET", "WET", "SUPPORTIVE", "STABILIZATION",
                         "SKILLS", "IRT", "OTHER"}  # fmt: skip
