"""What the engine runs: derived models and rules, read from ``sql/``.

A derived model is a SELECT in ``sql/derive/<name>.sql``; ``sql/catalogue.toml``
gives each model's indexes (and its key, and its count table when it has one).
Models are built in the order their references give (a model reading
``core.x`` is built after ``x``), so no hand-kept list can go stale.

A rule is a folder ``sql/rules/<RULE_ID>/``: ``rule.sql`` (a SELECT returning
the case columns), ``rule.toml`` (title, severity, guideline, the policy keys
it reads), ``README.md`` (its page) and ``tests/`` (its fixtures). The
catalogue of rules is generated from the folders: titles and severities are
written once, in ``rule.toml``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from psycopg import sql

from audit import db

CATALOGUE = db.SQL_DIR / "catalogue.toml"
DERIVE_DIR = db.SQL_DIR / "derive"
RULES_DIR = db.SQL_DIR / "rules"
REPORT_DIR = db.SQL_DIR / "report"
CASE_EVIDENCE_SQL = REPORT_DIR / "case_evidence.sql"

CASE_COLUMNS = (
    "case_id", "rule_id", "severity", "status", "patient_id", "site_id",
    "prescriber_id", "case_date", "summary", "evidence",
)  # fmt: skip
#: Parameters the engine binds itself (not policy settings).
ENGINE_PARAMETERS = frozenset({"as_of", "run_id", "history_start", "incremental"})
#: Models built after the rules (they read the run's cases).
POST_RULE_MODELS = ("patient_sites", "patient_prescribers", "case_sites", "care_pathway")

MODEL_REF = re.compile(r"\bcore\.(\w+)\b")
RUN_CASES_REF = re.compile(r"\baudit\.run_cases\b")


def referenced(path: Path, names: set[str]) -> set[str]:
    """Which of the models ``names`` the SQL file reads (its ``core.<name>``)."""
    return {m for m in MODEL_REF.findall(path.read_text()) if m in names}


@dataclass(frozen=True)
class Model:
    name: str
    indexes: tuple[tuple[str, ...], ...]
    # Rows belong to one patient (an incremental audit replaces the touched
    # patients' rows), or to another key (it adds the rows of new keys).
    key: str = "patient_id"
    # Columns of a count table kept with the model (core.<name>_counts).
    counts: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return DERIVE_DIR / f"{self.name}.sql"

    def counts_table(self, schema: str = "core") -> sql.Identifier:
        return sql.Identifier(schema, f"{self.name}_counts")

    def references(self, names: set[str]) -> set[str]:
        return referenced(self.path, names) - {self.name}

    @property
    def reads_run_cases(self) -> bool:
        """Whether it reads the run's cases (it is built after the rules)."""
        return RUN_CASES_REF.search(self.path.read_text()) is not None


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    guideline: str
    parameters: tuple[str, ...]
    order: int = 0
    # the policy key giving how many days after its case date a case can
    # first be raised (None: at once); quarters that recent are still maturing
    matures_after: str | None = None

    @property
    def folder(self) -> Path:
        return RULES_DIR / self.id

    @property
    def path(self) -> Path:
        return self.folder / "rule.sql"

    def references(self, names: set[str]) -> set[str]:
        return referenced(self.path, names)

    @property
    def fixtures(self) -> list[Path]:
        return sorted((self.folder / "tests").glob("*.yaml"))


def _declared(doc: dict) -> dict[str, Model]:
    return {
        m["name"]: Model(
            m["name"],
            tuple(tuple(i) for i in m.get("indexes", [])),
            m.get("key", "patient_id"),
            tuple(m.get("counts", ())),
        )
        for m in doc["model"]
    }


def _models(doc: dict) -> tuple[Model, ...]:
    declared = _declared(doc)
    for path in DERIVE_DIR.glob("*.sql"):
        if path.stem not in declared:
            raise ValueError(f"{path} has no [[model]] entry in {CATALOGUE.name}")
    for model in declared.values():
        if not model.path.is_file():
            raise FileNotFoundError(f"catalogue entry without SQL file: {model.path}")
    pre = {n: m for n, m in declared.items() if n not in POST_RULE_MODELS}
    # Topological order; ties by name, so the order is the same on every machine.
    deps = {n: m.references(set(pre)) for n, m in pre.items()}
    ordered: list[Model] = []
    done: set[str] = set()
    while len(done) < len(pre):
        ready = sorted(n for n in pre if n not in done and deps[n] <= done)
        if not ready:
            cycle = sorted(n for n in pre if n not in done)
            raise ValueError(f"derived models reference each other in a cycle: {cycle}")
        for n in ready:
            ordered.append(pre[n])
            done.add(n)
    return tuple(ordered)


def _rules() -> tuple[Rule, ...]:
    rules = []
    for folder in sorted(p for p in RULES_DIR.iterdir() if p.is_dir()):
        meta_path = folder / "rule.toml"
        if not meta_path.is_file() or not (folder / "rule.sql").is_file():
            raise FileNotFoundError(f"rule folder {folder} needs rule.sql and rule.toml")
        meta = tomllib.loads(meta_path.read_text())
        if meta.get("id") != folder.name:
            raise ValueError(f"{meta_path}: id must be the folder's name, {folder.name}")
        rules.append(
            Rule(
                meta["id"],
                meta["title"],
                meta["severity"],
                meta["guideline"],
                tuple(meta.get("parameters", ())),
                int(meta.get("order", 0)),
                meta.get("matures_after"),
            )
        )
    return tuple(sorted(rules, key=lambda r: (r.order, r.id)))


@lru_cache(maxsize=1)
def _storage() -> dict:
    return tomllib.loads(CATALOGUE.read_text())


@lru_cache(maxsize=1)
def catalogue() -> tuple[tuple[Model, ...], tuple[Rule, ...]]:
    """The derived models (in build order) and the rules (in report order)."""
    return _models(_storage()), _rules()


@lru_cache(maxsize=1)
def post_rule_models() -> tuple[Model, ...]:
    declared = _declared(_storage())
    return tuple(declared[n] for n in POST_RULE_MODELS)


def model_names() -> set[str]:
    return {m.name for m in catalogue()[0]} | set(POST_RULE_MODELS)


@lru_cache(maxsize=1)
def engine_sha256() -> str:
    """One hash of everything that decides a case: the catalogue, every
    derived-model and rule file (SQL and metadata), the helper functions and
    the evidence query. A change of any of them forces a full audit."""
    digest = hashlib.sha256()
    files = [
        CATALOGUE,
        *sorted(DERIVE_DIR.glob("*.sql")),
        *sorted(RULES_DIR.glob("*/rule.sql")),
        *sorted(RULES_DIR.glob("*/rule.toml")),
        *sorted(db.FUNCTIONS_DIR.glob("*.sql")),
        CASE_EVIDENCE_SQL,
    ]
    for path in files:
        rel = path.relative_to(db.SQL_DIR).as_posix()
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
