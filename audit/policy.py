"""The guideline policy: every threshold and value set the rules use.

The defaults are ``audit/policies/2026.1.toml``. A site passes its own file
with ``--policy FILE``: it holds a ``version`` and only the values it changes;
they are merged over the defaults (tables key by key, an ingredient's fields
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

DEFAULT_POLICY = Path(__file__).parent / "policies" / "2026.1.toml"

DRUG_CLASSES = ("SSRI", "SNRI", "ALPHA1", "BZD", "MDMA")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ,.'-]{0,63}$")
_CODE = re.compile(r"^[A-Za-z0-9.]{1,20}$")
_RXCUI = re.compile(r"^[0-9]{1,10}$")


class PolicyError(UsageError):
    pass


# key -> (type, minimum, maximum) for scalar settings; ("codes",) for lists.
_DAYS = (int, 1, 3650)
SCHEMA: dict[str, dict[str, tuple]] = {
    "cohort": {"ptsd_icd10cm": ("codes",), "ptsd_snomed": ("codes",)},
    "episodes": {
        "episode_gap_days": _DAYS,
        "acute_days": _DAYS,
        "acute_window_days": _DAYS,
        "continuation_days": _DAYS,
        "remission_pcl5_below": (int, 1, 80),
    },
    "psychotherapy": {
        "tf_modalities": ("modalities",),
        "course_gap_days": _DAYS,
        "tf_min_sessions": (int, 1, 100),
        "course_index_lookback_days": (int, 0, 3650),
        "stabilization_max_sessions": (int, 1, 100),
    },
    "benzodiazepines": {
        "new_start_lookback_days": _DAYS,
        "exclusion_lookback_days": (int, 0, 3650),
        "exclusion_icd10cm_prefixes": ("codes",),
    },
    "venlafaxine": {"ven_lookback_days": _DAYS},
    "prazosin": {
        "prazosin_start_max_mg": (float, 0.001, 1000),
        "prazosin_max_mg": (float, 0.001, 1000),
        "nightmare_icd10cm": ("codes",),
        "nightmare_prazosin_lookback_days": (int, 0, 3650),
        "nightmare_prazosin_window_days": _DAYS,
    },
}
INGREDIENT_KEYS = {"class", "rxcui", "names", "min_mg", "max_mg", "first_line"}
TF_MODALITIES_ALLOWED = {"PE", "CPT", "EMDR", "NET", "WET", "SUPPORTIVE", "STABILIZATION",
                         "SKILLS", "OTHER"}  # fmt: skip


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
        out["ptsd_icd10cm"] = [c.replace(".", "").upper() for c in out["ptsd_icd10cm"]]
        out["nightmare_icd10cm"] = [c.replace(".", "").upper() for c in out["nightmare_icd10cm"]]
        out["exclusion_icd10cm_prefixes"] = [
            c.replace(".", "").upper() for c in out["exclusion_icd10cm_prefixes"]
        ]
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
    if kind in ("codes", "modalities"):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
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
    allowed = {"version", "title", "ingredients", *SCHEMA}
    for key in content:
        if key not in allowed:
            raise _fail(source, key, "unknown key")
    if not isinstance(content.get("version"), str) or not content["version"].strip():
        raise _fail(source, "version", "required: a text naming this policy's version")
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
    classes = {ing["class"] for ing in ingredients.values()}
    for needed in DRUG_CLASSES:
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


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {path}: not valid TOML ({exc})") from None


def load(path: Path | None = None) -> Policy:
    """The default policy, or a site's file merged over it; validated."""
    content = _read(DEFAULT_POLICY)
    source = DEFAULT_POLICY.name
    if path is not None:
        site = _read(Path(path))
        source = str(path)
        if "version" not in site:
            raise _fail(source, "version", "required: a text naming this policy's version")
        # Validate the site's own keys before merging, so an unknown key is
        # reported as the site wrote it.
        for key in site:
            if key not in {"version", "title", "ingredients", *SCHEMA}:
                raise _fail(source, key, "unknown key")
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
