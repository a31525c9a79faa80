"""The guideline policy: every threshold and value set the rules use.

The defaults are ``audit/policies/2027.2.toml``. Policies 2027.1 and 2026.1
stay bundled (``--policy 2027.1``) so that a site that pinned one can
reproduce an old run.
A site passes its own file with ``--policy FILE``: it holds a ``version`` and
only the values it changes, merged over the default policy or over the
bundled policy its ``base`` names (tables key by key, an ingredient's fields
one by one). A file with an unknown key, a value of the wrong type or out of
range is refused with one sentence naming the key. A run records the policy's
version and the SHA-256 of the merged content.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from audit.errors import UsageError

POLICY_DIR = Path(__file__).parent / "policies"
DEFAULT_VERSION = "2027.2"
DEFAULT_POLICY = POLICY_DIR / f"{DEFAULT_VERSION}.toml"
BUNDLED = {p.stem: p for p in sorted(POLICY_DIR.glob("*.toml"))}

DRUG_CLASSES = ("SSRI", "SNRI", "OTHER_AD", "ALPHA1", "BZD", "MDMA")
#: Classes a policy must have an ingredient of (other antidepressants are optional).
REQUIRED_CLASSES = ("SSRI", "SNRI", "ALPHA1", "BZD", "MDMA")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ,.'-]{0,63}$")
_CODE = re.compile(r"^[A-Za-z0-9.]{1,20}$")
_RXCUI = re.compile(r"^[0-9]{1,10}$")


class PolicyError(UsageError):
    pass


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


def word_pattern(words: list[str]) -> str:
    """A PostgreSQL regular expression matching any of ``words`` as a whole
    word (never matching when there are none). The words are the policy's,
    escaped; the pattern is bound as a parameter."""
    if not words:
        return "(?!)"
    escaped = (re.sub(r"([^A-Za-z0-9 ])", r"\\\1", w) for w in words)
    return r"\m(" + "|".join(escaped) + r")\M"


@dataclass(frozen=True)
class Policy:
    version: str
    title: str
    content: dict
    sha256: str
    source: str

    def params(self) -> dict[str, object]:
        """Scalar and list settings as SQL parameters (flat names)."""
        out: dict[str, object] = {}
        for section in SCHEMA:
            out.update(self.content[section])
        for key in ICD_KEYS:
            out[key] = [c.replace(".", "").upper() for c in out[key]]
        by_modality = out.pop("tf_min_sessions_by_modality")
        out["tf_min_modalities"] = sorted(by_modality)
        out["tf_min_counts"] = [by_modality[m] for m in sorted(by_modality)]
        out["paroxetine_cr_pattern"] = word_pattern(out.pop("paroxetine_cr_words"))
        out["paroxetine_vasomotor_pattern"] = word_pattern(out.pop("paroxetine_vasomotor_names"))
        out["seizure_route_pattern"] = word_pattern(out.pop("seizure_route_words"))
        return out

    def ingredients(self) -> list[dict]:
        rows = []
        for name, ing in sorted(self.content["ingredients"].items()):
            rows.append(
                {
                    "ingredient": name,
                    "drug_class": ing["class"],
                    "rxcui": ing.get("rxcui") or None,
                    "names": [n.lower() for n in ing["names"]],
                    "min_mg": ing.get("min_mg"),
                    "max_mg": ing.get("max_mg"),
                    "first_line": bool(ing.get("first_line", False)),
                }
            )
        return rows


def _fail(source: str, key: str, reason: str) -> PolicyError:
    return PolicyError(f"policy file {source}: {key}: {reason}")


def _check_scalar(source: str, key: str, value: object, spec: tuple) -> None:
    kind = spec[0]
    if kind is bool:
        if not isinstance(value, bool):
            raise _fail(source, key, "must be true or false")
        return
    if kind == "choice":
        if value not in spec[1:]:
            raise _fail(source, key, f"must be one of {', '.join(spec[1:])}")
        return
    if kind == "ingredient_names":
        if not isinstance(value, list) or not all(
            isinstance(v, str) and re.fullmatch(r"[a-z][a-z0-9_]{0,40}", v) for v in value
        ):
            raise _fail(source, key, "must be a list of ingredient names (lower-case words)")
        return
    if kind == "modality_counts":
        if not isinstance(value, dict):
            raise _fail(source, key, "must be a table of modality = sessions")
        for modality, count in value.items():
            if modality not in TF_MODALITIES_ALLOWED:
                raise _fail(source, f"{key}.{modality}", "not a modality of the extract format")
            _check_scalar(source, f"{key}.{modality}", count, (int, 1, 100))
        return
    if kind == "names":
        if not isinstance(value, list) or not all(
            isinstance(v, str) and _NAME.fullmatch(v) for v in value
        ):
            raise _fail(source, key, "must be a list of drug-name words")
        return
    if kind in ("codes", "modalities"):
        bare = key.rsplit(".", 1)[-1]
        if (
            not isinstance(value, list)
            or (not value and bare not in EMPTY_ALLOWED)
            or not all(isinstance(v, str) for v in value)
        ):
            raise _fail(source, key, "must be a non-empty list of texts")
        if kind == "codes" and not all(_CODE.fullmatch(v) for v in value):
            raise _fail(source, key, "codes are 1-20 letters, digits or dots")
        if kind == "modalities" and not set(value) <= TF_MODALITIES_ALLOWED:
            raise _fail(source, key, "modalities must be from the extract format (not UNKNOWN)")
        return
    _, lo, hi = spec
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise _fail(source, key, f"must be {'a number' if kind is float else 'a whole number'}")
    if not lo <= value <= hi:
        raise _fail(source, key, f"must be between {lo} and {hi}")


def _check_ingredient(source: str, name: str, ing: object) -> None:
    key = f"ingredients.{name}"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
        raise _fail(source, key, "ingredient names are lower-case words")
    if not isinstance(ing, dict):
        raise _fail(source, key, "must be a table")
    unknown = set(ing) - INGREDIENT_KEYS
    if unknown:
        raise _fail(source, f"{key}.{sorted(unknown)[0]}", "unknown key")
    if ing.get("class") not in DRUG_CLASSES:
        raise _fail(source, f"{key}.class", f"must be one of {', '.join(DRUG_CLASSES)}")
    names = ing.get("names")
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and _NAME.fullmatch(n) for n in names)
    ):
        raise _fail(source, f"{key}.names", "must be a non-empty list of drug names")
    if "rxcui" in ing and not (isinstance(ing["rxcui"], str) and _RXCUI.fullmatch(ing["rxcui"])):
        raise _fail(source, f"{key}.rxcui", "must be a text of digits")
    for dose in ("min_mg", "max_mg"):
        if dose in ing:
            _check_scalar(source, f"{key}.{dose}", ing[dose], (float, 0.001, 100000))
    if ing["class"] in ("SSRI", "SNRI"):
        if "min_mg" not in ing or "max_mg" not in ing:
            raise _fail(source, key, "antidepressants need min_mg and max_mg")
        if ing["min_mg"] > ing["max_mg"]:
            raise _fail(source, key, "min_mg is above max_mg")
    if "first_line" in ing and not isinstance(ing["first_line"], bool):
        raise _fail(source, f"{key}.first_line", "must be true or false")


def validate(content: dict, source: str) -> None:
    allowed = {"version", "title", "base", "ingredients", *SCHEMA}
    for key in content:
        if key not in allowed:
            raise _fail(source, key, "unknown key")
    if not isinstance(content.get("version"), str) or not content["version"].strip():
        raise _fail(source, "version", "required: a text naming this policy's version")
    if not _VERSION.fullmatch(content["version"]):
        raise _fail(source, "version", "1-40 letters, digits, dots, dashes or underscores,"
                    " starting with a letter or digit")  # fmt: skip
    if "title" in content and (
        not isinstance(content["title"], str)
        or len(content["title"]) > 200
        or any(ord(ch) < 32 for ch in content["title"])
    ):
        raise _fail(source, "title", "a short line of text")
    for section, keys in SCHEMA.items():
        table = content.get(section)
        if not isinstance(table, dict):
            raise _fail(source, section, "must be a table")
        for key in table:
            if key not in keys:
                raise _fail(source, f"{section}.{key}", "unknown key")
        for key, spec in keys.items():
            if key not in table:
                raise _fail(source, f"{section}.{key}", "missing")
            _check_scalar(source, f"{section}.{key}", table[key], spec)
    ingredients = content.get("ingredients")
    if not isinstance(ingredients, dict) or not ingredients:
        raise _fail(source, "ingredients", "must be a table of ingredients")
    for name, ing in ingredients.items():
        _check_ingredient(source, name, ing)
    fills = content["fills"]
    if fills["paroxetine_cr_min_mg"] > fills["paroxetine_cr_max_mg"]:
        raise _fail(source, "fills.paroxetine_cr_min_mg", "is above paroxetine_cr_max_mg")
    if content["prazosin"]["prazosin_max_mg"] > content["prazosin"]["prazosin_high_mg"]:
        raise _fail(source, "prazosin.prazosin_max_mg", "is above prazosin_high_mg")
    if content["prazosin"]["prazosin_high_mg"] > content["prazosin"]["prazosin_very_high_mg"]:
        raise _fail(source, "prazosin.prazosin_high_mg", "is above prazosin_very_high_mg")
    for key in ("seizure_ingredients", "seizure_route_ingredients"):
        for name in fills[key]:
            if name not in ingredients or ingredients[name]["class"] != "BZD":
                raise _fail(source, f"fills.{key}", f"{name!r} is not a benzodiazepine ingredient")
    classes = {ing["class"] for ing in ingredients.values()}
    for needed in REQUIRED_CLASSES:
        if needed not in classes:
            raise _fail(source, "ingredients", f"no ingredient of class {needed}")


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


#: A policy file is a few kilobytes; anything this large is not one.
MAX_POLICY_BYTES = 256 * 1024
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


def _read(path: Path) -> dict:
    try:
        if not path.is_file():
            if path.exists():
                raise PolicyError(f"policy file {path} is not a regular file")
            raise FileNotFoundError(path)
        with path.open("rb") as fh:
            data = fh.read(MAX_POLICY_BYTES + 1)
        if len(data) > MAX_POLICY_BYTES:
            raise PolicyError(f"policy file {path} is larger than {MAX_POLICY_BYTES} bytes")
        return tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise PolicyError(f"policy file {path}: nested too deeply to be a policy") from None
    except OSError as exc:
        raise PolicyError(f"policy file {path} cannot be read ({exc.strerror})") from None


def _bundled(name: str, source: str) -> Path:
    if name not in BUNDLED:
        known = ", ".join(sorted(BUNDLED))
        raise _fail(source, "base", f"no bundled policy {name!r} (bundled: {known})")
    return BUNDLED[name]


def load(path: Path | str | None = None) -> Policy:
    """The default policy, a bundled one by its version (``"2026.1"``), or a
    site's file merged over the default (or over the bundled policy named by
    its ``base``); validated."""
    base_path = DEFAULT_POLICY
    if path is not None and str(path) in BUNDLED and not Path(path).is_file():
        base_path, path = BUNDLED[str(path)], None
    content = _read(base_path)
    source = base_path.name
    if path is not None:
        site = _read(Path(path))
        source = str(path)
        if "version" not in site:
            raise _fail(source, "version", "required: a text naming this policy's version")
        # Validate the site's own keys before merging, so an unknown key is
        # reported as the site wrote it.
        for key in site:
            if key not in {"version", "title", "base", "ingredients", *SCHEMA}:
                raise _fail(source, key, "unknown key")
        if site is not None and "base" in site:
            if not isinstance(site["base"], str):
                raise _fail(source, "base", "must name a bundled policy version")
            content = _read(_bundled(site["base"], source))
        if Path(path).resolve() in {p.resolve() for p in BUNDLED.values()}:
            content = {}
        content = _merge(content, site)
    validate(content, source)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return Policy(
        version=content["version"],
        title=content.get("title", ""),
        content=content,
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        source=source,
    )
