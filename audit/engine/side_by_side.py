"""A full audit's derived tables and rules, built on two connections at once.

A full audit rebuilds every derived table and runs every rule: some twenty
statements of a second or two, most of which run on one core. Here each is
a step that needs the steps whose tables it reads (a model the ``core.<x>``
names of its SQL, a rule likewise, a model built after the rules every
rule), and the steps run on :data:`WORKERS` connections of their own as soon
as what they need is built, the longest chain first.

They build into the schema ``derive`` (migration 0030), committed one
statement at a time, so the other connection sees them; the SQL reads
``derive.<x>`` for ``core.<x>`` (:func:`audit.engine.build.sql_for`), and the
rules write ``derive.run_cases``. The audit's own transaction then moves the
tables into ``core`` and the cases into ``audit.run_cases``
(:func:`move_into_core`), and the evidence into ``audit.case_evidence``
(:func:`audit.engine.cases.update_cases`): until it commits, ``core`` holds the previous
audit's tables, and a killed or failed audit leaves them whole. What a
failed build left in ``derive`` is dropped by the next one.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import psycopg
from psycopg import sql

from audit import db
from audit.engine.build import (
    POLICY_TABLES,
    build_model,
    refresh_policy_tables,
    run_rule,
    text_for,
)
from audit.engine.cases import NEW_LABELS, PACKED
from audit.engine.catalogue import CASE_COLUMNS, CASE_EVIDENCE_SQL, Model, Rule, referenced
from audit.policy import Policy

SCHEMA = "derive"
WORKERS = 2
CASES_ANALYZED = "the run's cases analysed"
EVIDENCE = "case evidence"
#: Built by the evidence step, read by the audit's transaction.
EVIDENCE_TABLES = ("cases", "evidence_rows", "evidence_labels", "case_evidence")
CASES_REF = re.compile(r"\baudit\.cases\b")


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[psycopg.Connection], int | None]
    needs: frozenset[str] = frozenset()


@dataclass
class Built:
    """What the steps gave: each one's seconds and value (a rule's cases)."""

    seconds: dict[str, float] = field(default_factory=dict)
    values: dict[str, int | None] = field(default_factory=dict)


def steps(
    models: tuple[Model, ...], post: tuple[Model, ...], rules: tuple[Rule, ...], params: dict
) -> list[Step]:
    """The models, the rules and the models built after them, as steps."""
    names = {m.name for m in models + post}
    out = []
    for m in models + post:
        needs = {f"derive {n}" for n in m.references(names)}
        if m.reads_run_cases:
            needs.add(CASES_ANALYZED)
        build = partial(build_model, model=m, params=params, schema=SCHEMA)
        out.append(Step(f"derive {m.name}", build, frozenset(needs)))
    for r in rules:
        needs = frozenset(f"derive {n}" for n in r.references(names))
        out.append(
            Step(f"rule {r.id}", partial(run_rule, rule=r, params=params, schema=SCHEMA), needs)
        )
    out.append(Step(CASES_ANALYZED, _analyze_cases, frozenset(f"rule {r.id}" for r in rules)))
    looked_up = {f"derive {n}" for n in referenced(CASE_EVIDENCE_SQL, names)}
    out.append(Step(EVIDENCE, _evidence, frozenset(looked_up | {CASES_ANALYZED})))
    return out


def _analyze_cases(conn: psycopg.Connection) -> None:
    """Statistics of the run's cases, for the models that read them."""
    conn.execute(sql.SQL("analyze {}").format(sql.Identifier(SCHEMA, "run_cases")))


def _evidence(conn: psycopg.Connection) -> None:
    """Every case's evidence rows (``sql/report/case_evidence.sql``) packed
    as :func:`audit.engine.cases.update_cases` packs them, with the labels
    the dictionary lacks, for the cases as the audit will leave them: this
    run's, and the earlier ones it did not find again (they will be resolved)."""
    table = {n: sql.Identifier(SCHEMA, n) for n in EVIDENCE_TABLES}
    conn.execute(
        sql.SQL(
            "create unlogged table {cases} as"
            " select r.case_id, r.patient_id, r.evidence from {run_cases} as r"
            " union all"
            " select c.case_id, c.patient_id, c.evidence from audit.cases as c"
            " where not exists (select 1 from {run_cases} as r where r.case_id = c.case_id)"
        ).format(cases=table["cases"], run_cases=sql.Identifier(SCHEMA, "run_cases"))
    )
    query = CASES_REF.sub(f"{SCHEMA}.cases", text_for(CASE_EVIDENCE_SQL, False, SCHEMA))
    conn.execute(
        sql.SQL("create unlogged table {} as ").format(table["evidence_rows"]) + sql.SQL(query),
        {"all": True},
    )
    conn.execute(
        sql.SQL("create unlogged table {} as ").format(table["evidence_labels"])
        + sql.SQL(NEW_LABELS).format(rows=table["evidence_rows"])
    )
    labels = sql.SQL(
        "(select idx, label from audit.evidence_labels union all select idx, label from {})"
    ).format(table["evidence_labels"])
    conn.execute(
        sql.SQL("create unlogged table {} as ").format(table["case_evidence"])
        + sql.SQL(PACKED).format(rows=table["evidence_rows"], labels=labels)
    )


def last_seconds(conn: psycopg.Connection) -> dict[str, float]:
    """Each step's seconds in the latest full audit that recorded them."""
    row = conn.execute(
        "select step_seconds from audit.runs where step_seconds is not null"
        " order by started_at desc, run_id desc limit 1"
    ).fetchone()
    if not row or not isinstance(row[0], dict):
        return {}
    return {k: float(v) for k, v in row[0].items() if isinstance(v, (int, float))}


def prepare(conn: psycopg.Connection, policy: Policy) -> None:
    """Empty ``derive`` (what a failed build left), then create its run-cases
    and policy tables. ``conn`` is one of the builders' (autocommit)."""
    for (name,) in conn.execute(
        "select tablename from pg_tables where schemaname = %s order by tablename", (SCHEMA,)
    ).fetchall():
        conn.execute(
            sql.SQL("drop table if exists {} cascade").format(sql.Identifier(SCHEMA, name))
        )
    conn.execute(
        sql.SQL("create unlogged table {} (like audit.run_cases including defaults)").format(
            sql.Identifier(SCHEMA, "run_cases")
        )
    )
    for name in POLICY_TABLES:
        conn.execute(
            sql.SQL("create unlogged table {} (like {} including all)").format(
                sql.Identifier(SCHEMA, name), sql.Identifier("core", name)
            )
        )
    refresh_policy_tables(conn, policy, SCHEMA)


def build(
    conn: psycopg.Connection,
    policy: Policy,
    todo: list[Step],
    progress: Callable[[str], None],
    workers: int = WORKERS,
    seconds: dict[str, float] | None = None,
) -> Built:
    """Run the steps on ``workers`` connections of their own (opened like
    ``conn``), each once all it needs is done, the one with the longest
    chain after it first (its length in ``seconds``, each step's time in the
    previous build; a step without one counts as the median); the first
    error is raised once every connection has stopped (the others'
    statements cancelled)."""
    by_name = {s.name: s for s in todo}
    height = _heights(todo, seconds or {})
    pending = set(by_name)
    running: set[str] = set()
    built = Built()
    errors: list[BaseException] = []
    lock = threading.Condition()
    conns: list[psycopg.Connection] = []
    said = threading.Lock()  # one progress line at a time, never two run together

    def say(message: str) -> None:
        with said:
            progress(message)

    def next_step() -> Step | None:
        with lock:
            while not errors and pending:
                ready = [n for n in pending if by_name[n].needs <= built.seconds.keys()]
                if ready:
                    name = max(ready, key=lambda n: (height[n], n))
                    pending.discard(name)
                    running.add(name)
                    return by_name[name]
                if not running:
                    raise RuntimeError(f"steps that can never run: {sorted(pending)}")
                lock.wait()
            return None

    def work(conn: psycopg.Connection) -> None:
        try:
            while (step := next_step()) is not None:
                say(step.name)
                t = time.perf_counter()
                value = step.run(conn)
                with lock:
                    running.discard(step.name)
                    built.seconds[step.name] = time.perf_counter() - t
                    built.values[step.name] = value
                    lock.notify_all()
        except BaseException as exc:  # raised again by the caller's thread
            with lock:
                errors.append(exc)
                lock.notify_all()
            for other in conns:
                if other is not conn:
                    _cancel(other)

    try:
        for _ in range(workers):
            conns.append(db.sibling(conn))
            # the models' SQL names the touched patients' table (empty in a full audit)
            conns[-1].execute("create temp table rx_touched (patient_id text primary key)")
        prepare(conns[0], policy)
        threads = [
            threading.Thread(target=work, args=(c,), name=f"rxaudit-derive-{i}", daemon=True)
            for i, c in enumerate(conns)
        ]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:  # interrupted: stop the builders before leaving
            with lock:
                errors.append(RuntimeError("interrupted"))
            for c in conns:
                _cancel(c)
            for t in threads:
                t.join()
            raise
    finally:
        for c in conns:
            c.release()
    if errors:
        raise errors[0]
    return built


def _cancel(conn: psycopg.Connection) -> None:
    """Cancel the statement ``conn`` runs, if any (from another thread)."""
    with contextlib.suppress(psycopg.Error):
        conn.cancel_safe(timeout=10)


def _heights(todo: list[Step], seconds: dict[str, float]) -> dict[str, float]:
    """How long the longest chain from each step to the end takes."""
    known = sorted(v for k, v in seconds.items() if k in {s.name for s in todo} and v >= 0)
    usual = known[len(known) // 2] if known else 1.0
    needed_by: dict[str, list[str]] = {s.name: [] for s in todo}
    for s in todo:
        for n in s.needs:
            needed_by[n].append(s.name)
    height: dict[str, float] = {}

    def h(name: str) -> float:
        if name not in height:
            own = seconds.get(name, usual)
            height[name] = own + max((h(n) for n in needed_by[name]), default=0.0)
        return height[name]

    for s in todo:
        h(s.name)
    return height


def move_into_core(conn: psycopg.Connection, models: tuple[Model, ...]) -> None:
    """In the audit's transaction: the built tables replace ``core``'s, the
    run's cases go into ``audit.run_cases``."""
    for m in models:
        tables = [m.name] + ([f"{m.name}_counts"] if m.counts else [])
        for name in tables:
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier("core", name)))
            conn.execute(
                sql.SQL("alter table {} set schema core").format(sql.Identifier(SCHEMA, name))
            )
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in ("run_id", *CASE_COLUMNS))
    conn.execute(
        sql.SQL("insert into audit.run_cases ({cols}) select {cols} from {src}").format(
            cols=cols, src=sql.Identifier(SCHEMA, "run_cases")
        )
    )


def clear(conn: psycopg.Connection) -> None:
    """In the audit's transaction, once all is moved: ``derive`` left empty."""
    for name in ("run_cases", *POLICY_TABLES, *EVIDENCE_TABLES):
        conn.execute(sql.SQL("drop table {}").format(sql.Identifier(SCHEMA, name)))
