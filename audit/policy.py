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
from audit.policy_schema import (
    DRUG_CLASSES,
    EMPTY_ALLOWED,
    ICD_KEYS,
    INGREDIENT_KEYS,
    REQUIRED_CLASSES,
    SCHEMA,
    TF_MODALITIES_ALLOWED,
)

POLICY_DIR = Path(__file__).parent / "policies"
DEFAULT_VERSION = "2027.2"
DEFAULT_POLICY = POLICY_DIR / f"{DEFAULT_VERSION}.toml"
BUNDLED = {p.stem: p for p in sorted(POLICY_DIR.glob("*.toml"))}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ,.'-]{0,63}$")
_CODE = re.compile(r"^[A-Za-z0-9.]{1,20}$")
_RXCUI = re.compile(r"^[0-9]{1,10}$")


class PolicyError(UsageError):
    pass


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
