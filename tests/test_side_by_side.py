"""A full audit's steps, built on two connections at once: each after what it
reads, a failure stops them all, and a failed audit leaves the previous
tables whole."""

from __future__ import annotations

import time

import psycopg
import pytest

from audit import db, pipeline, policy
from audit.engine import side_by_side
from audit.engine.catalogue import catalogue, post_rule_models
from audit.generate import generate

pytestmark = pytest.mark.db


def _sleeps(log: list, name: str, seconds: float, fail: bool = False):
    def run(conn: psycopg.Connection) -> int:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        log.append(("start", name, pid, time.monotonic()))
        conn.execute("select pg_sleep(%s)", (seconds,))
        if fail:
            raise ValueError(f"{name} failed")
        log.append(("end", name, pid, time.monotonic()))
        return 1

    return run


def test_each_step_starts_after_what_it_needs_and_independent_steps_run_side_by_side(conn):
    log: list = []
    todo = [
        side_by_side.Step("a", _sleeps(log, "a", 0.3)),
        side_by_side.Step("b", _sleeps(log, "b", 0.3)),
        side_by_side.Step("c", _sleeps(log, "c", 0.05), frozenset({"a", "b"})),
    ]
    built = side_by_side.build(conn, policy.load(), todo, lambda msg: None)
    assert set(built.seconds) == {"a", "b", "c"} and built.values == {"a": 1, "b": 1, "c": 1}
    at = {(kind, name): t for kind, name, _, t in log}
    assert at[("start", "c")] >= max(at[("end", "a")], at[("end", "b")])
    # a and b overlapped, on two connections that are not the caller's
    assert at[("start", "b")] < at[("end", "a")] and at[("start", "a")] < at[("end", "b")]
    pids = {pid for kind, name, pid, _ in log if name in ("a", "b")}
    assert len(pids) == 2 and conn.info.backend_pid not in pids


def test_the_longest_chain_by_the_previous_build_s_seconds_starts_first(conn):
    log: list = []
    todo = [
        side_by_side.Step("a", _sleeps(log, "a", 0)),
        side_by_side.Step("b", _sleeps(log, "b", 0)),
        side_by_side.Step("c", _sleeps(log, "c", 0), frozenset({"b"})),
    ]
    # by the number of steps, b (two in its chain) would come first
    seconds = {"a": 30.0, "b": 1.0, "c": 1.0}
    side_by_side.build(conn, policy.load(), todo, lambda msg: None, workers=1, seconds=seconds)
    assert [name for kind, name, _, _ in log if kind == "start"] == ["a", "b", "c"]
    log.clear()
    side_by_side.build(conn, policy.load(), todo, lambda msg: None, workers=1)
    assert [name for kind, name, _, _ in log if kind == "start"] == ["b", "c", "a"]


def test_a_full_audit_records_its_steps_seconds_for_the_next(conn, tmp_path):
    generate(200, 5, tmp_path / "b")
    results = pipeline.ingest_batches(conn, [tmp_path / "b"])
    run_id = pipeline.audit(conn, policy.load(), results)["run_id"]
    recorded = side_by_side.last_seconds(conn)
    assert {"derive fill_coverage", "rule BZD-PTSD", side_by_side.EVIDENCE} <= set(recorded)
    assert all(v >= 0 for v in recorded.values())
    stored = conn.execute("select step_seconds from audit.runs where run_id = %s", (run_id,))
    assert stored.fetchone()[0] is not None


def test_a_failing_step_stops_the_others_and_its_error_is_raised(conn):
    log: list = []
    todo = [
        side_by_side.Step("slow", _sleeps(log, "slow", 60)),
        side_by_side.Step("broken", _sleeps(log, "broken", 0.2, fail=True)),
        side_by_side.Step("after", _sleeps(log, "after", 0), frozenset({"broken"})),
    ]
    t = time.monotonic()
    with pytest.raises(ValueError, match="broken failed"):
        side_by_side.build(conn, policy.load(), todo, lambda msg: None)
    assert time.monotonic() - t < 30  # the 60-second statement was cancelled
    assert not [e for e in log if e[1] == "after"]
    with db.connect(conn.info.dsn) as other:  # no builder is left behind
        assert (
            other.execute(
                "select count(*) from pg_stat_activity where datname = current_database()"
                " and query like 'select pg_sleep%%' and state = 'active'"
            ).fetchone()[0]
            == 0
        )


def test_every_model_and_rule_is_a_step_after_the_tables_it_reads():
    models, rules = catalogue()
    post = post_rule_models()
    todo = {s.name: s for s in side_by_side.steps(models, post, rules, {})}
    assert set(todo) == {f"derive {m.name}" for m in models + post} | {
        f"rule {r.id}" for r in rules
    } | {side_by_side.CASES_ANALYZED, side_by_side.EVIDENCE}
    # the rules read the pre-rule models; the models reading the run's cases wait for all
    assert "derive fill_coverage" in todo["derive med_trials"].needs
    assert "derive tf_courses" in todo["rule PSY-INCOMPLETE"].needs
    assert todo[side_by_side.CASES_ANALYZED].needs == {f"rule {r.id}" for r in rules}
    assert side_by_side.CASES_ANALYZED in todo["derive care_pathway"].needs
    assert side_by_side.CASES_ANALYZED not in todo["derive patient_prescribers"].needs
    # the evidence of the cases: after the run's cases and the fill days it looks up
    assert todo[side_by_side.EVIDENCE].needs >= {
        side_by_side.CASES_ANALYZED,
        "derive drug_fills",
        "derive fill_coverage",
    }
    for step in todo.values():
        assert step.needs <= set(todo), step.name


def _state(conn) -> dict:
    return {
        "cases": sorted(conn.execute("select case_id, status, summary from audit.cases")),
        "med_trials": sorted(conn.execute("select t::text from core.med_trials as t")),
        "pathway": sorted(conn.execute("select t::text from audit.pathway as t")),
    }


def test_a_failed_full_audit_leaves_the_previous_tables_and_the_next_clears_what_it_left(
    conn, tmp_path, monkeypatch
):
    generate(300, 11, tmp_path / "b")
    results = pipeline.ingest_batches(conn, [tmp_path / "b"])
    pipeline.audit(conn, policy.load(), results)
    before = _state(conn)
    assert before["cases"] and before["med_trials"]

    real = side_by_side.build_model

    def broken(c, model, params, incremental=False, schema="core"):
        if model.name == "ad_episodes":
            raise RuntimeError("the disk is full")
        return real(c, model, params, incremental, schema)

    monkeypatch.setattr(side_by_side, "build_model", broken)
    with pytest.raises(RuntimeError, match="the disk is full"):
        pipeline.audit(conn, policy.load(), [], full=True)
    assert _state(conn) == before
    left = {
        r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'derive'")
    }
    assert "run_cases" in left  # kept until the next build

    monkeypatch.setattr(side_by_side, "build_model", real)
    again = pipeline.audit(conn, policy.load(), [], full=True)
    assert again["evaluation"]["mode"] == "full"
    assert _state(conn) == before
    assert not conn.execute(
        "select tablename from pg_tables where schemaname = 'derive'"
    ).fetchall()
