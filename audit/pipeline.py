"""A run: ingest batches in order, audit, measure, write the report folder.

Each batch loads in its own transaction; the audit (rules, care pathway, case
states, measures) is one transaction; the report files are written after it
commits, into ``DIR/<run_id>/``, and ``DIR/latest`` then points at them.
``run.json`` is written last.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from audit import __version__, db, measures, policy, reports, rules
from audit.batchio import after_death_of
from audit.errors import BatchRejected, RxauditError
from audit.ingest import LoadSettings
from audit.ingest.load import Loader
from audit.outdir import clear_leftovers, move_into_place, point_latest, write_json


class ReportFailed(RxauditError):
    """The audit committed, its reports could not be written."""


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def ingest_batches(
    conn: psycopg.Connection,
    batch_dirs: list[Path],
    settings: LoadSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Load each batch in order; a rejected batch is reported, never fatal."""
    progress = progress or (lambda msg: None)
    loader = Loader(conn, settings, progress)
    results = []
    for i, batch_dir in enumerate(batch_dirs, start=1):
        progress(f"batch {i} of {len(batch_dirs)}: {batch_dir}")
        try:
            doc = loader.ingest(batch_dir).as_json()
            if doc["status"] == "loaded" and (after_death := after_death_of(batch_dir)):
                conn.execute(
                    "update audit.batches set after_death = %s where batch_no = %s",
                    (Jsonb(after_death), doc["batch_no"]),
                )
        except BatchRejected as exc:
            exc.in_folder(str(batch_dir))
            doc = {"batch_dir": str(batch_dir), "batch_id": exc.batch_id,
                   "status": "rejected", "reason": str(exc)}  # fmt: skip
        results.append(doc)
    return results


def batches_since_last_run(conn: psycopg.Connection) -> list[dict]:
    """The batches loaded since the latest finished run, as run.json lists
    them (for an audit that was not handed the ingest's results)."""
    rows = conn.execute(
        "select batch_no, batch_id, as_of::text, rows_in, rows_loaded, rows_quarantined,"
        " dropped_columns, replacements from audit.batches"
        " where status = 'loaded' and batch_no > coalesce((select max(last_batch_no)"
        "  from audit.runs where status in ('ok', 'rejected')), 0)"
        " order by batch_no"
    ).fetchall()
    return [
        {"batch_id": r[1], "status": "loaded", "batch_no": r[0], "as_of": r[2], "rows_in": r[3],
         "rows_loaded": r[4], "rows_quarantined": r[5], "dropped_columns": r[6],
         "replacements": r[7]}
        for r in rows
    ]  # fmt: skip


def _batch_ids(conn: psycopg.Connection, batch_nos: list[int]) -> list[str]:
    if not batch_nos:
        return []
    return [
        r[0]
        for r in conn.execute(
            "select batch_id from audit.batches where batch_no = any(%s) order by batch_no",
            (batch_nos,),
        )
    ]


def _count_resolved_by_batch(conn: psycopg.Connection, run_id: str, batches: list[dict]) -> None:
    """For each batch loaded by this run: the cases this run resolved whose
    patient the batch touched (every case the run resolved, for a batch that
    touched everyone); kept in audit.batches and the batch's run.json entry."""
    for b in batches:
        if b.get("status") != "loaded" or b.get("batch_no") is None:
            continue
        n = conn.execute(
            "select count(*) from audit.cases as c where c.resolved_run = %(run)s and ("
            " (select touches_all from audit.batches where batch_no = %(b)s)"
            " or exists (select 1 from audit.batch_patients as p"
            "  where p.batch_no = %(b)s and p.patient_id = c.patient_id))",
            {"run": run_id, "b": b["batch_no"]},
        ).fetchone()[0]
        conn.execute(
            "update audit.batches set cases_resolved = %s where batch_no = %s", (n, b["batch_no"])
        )
        b["cases_resolved"] = n


def audit(
    conn: psycopg.Connection,
    pol: policy.Policy,
    batches: list[dict] | None = None,
    progress: Callable[[str], None] | None = None,
    timings: dict[str, float] | None = None,
    full: bool = False,
    hold_for_report: bool = False,
) -> dict:
    """One audit transaction: rules, pathway, case states, measures; the run's summary.

    Only the patients touched since the previous run are re-evaluated when
    that gives the same result (see :func:`audit.rules.plan`); ``full``
    re-evaluates everyone. ``hold_for_report`` keeps a shared hold of the
    loader's lock past the commit (released by :func:`release_report_hold`),
    so that no other audit can rebuild the derived tables before this run's
    reports are written: the reports, and the summary printed, are the run's own.
    """
    progress = progress or (lambda msg: None)
    batches = batches or []
    timings = dict(timings or {})
    started = dt.datetime.now(dt.UTC)
    run_id = new_run_id(started)
    t = time.perf_counter()
    counts = {"loaded": 0, "duplicate": 0, "rejected": 0}
    for b in batches:
        counts[b["status"]] += 1
    with conn.transaction():
        db.take_loader_lock(conn)
        if hold_for_report:
            conn.execute("select pg_advisory_lock_shared(%s)", (db.LOADER_LOCK_KEY,))
        conn.execute(
            "insert into audit.runs (run_id, started_at, status, policy_version,"
            " policy_sha256) values (%s, %s, 'running', %s, %s)",
            (run_id, started, pol.version, pol.sha256),
        )
        result = rules.evaluate(conn, pol, run_id, progress, full=full)
        _count_resolved_by_batch(conn, run_id, batches)
        progress("measures")
        tm = time.perf_counter()
        measures.compute(
            conn,
            run_id,
            {
                **pol.params(),
                "as_of": result.as_of or rules.NOTHING_LOADED,
                "history_start": result.history_start,
            },
        )
        result.timings["measures"] = time.perf_counter() - tm
        timings["audit"] = time.perf_counter() - t
        timings.update({k: v for k, v in result.timings.items() if "." not in k})
        finished = dt.datetime.now(dt.UTC)
        summary = {
            "run_id": run_id,
            "rxaudit_version": __version__,
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "as_of": result.as_of.isoformat() if result.as_of else None,
            "history_start": result.history_start.isoformat() if result.as_of else None,
            "policy": {"version": pol.version, "sha256": pol.sha256, "source": pol.source},
            # orders_as_fills (auto, always, never) and the batches whose
            # `ordered` rows the audit counted as fills
            "orders": {
                "orders_as_fills": result.orders_as_fills,
                "fill_batches": _batch_ids(conn, result.order_fill_batches),
            },
            "evaluation": {
                "mode": result.plan.mode,
                "reason": result.plan.reason,
                "touched_patients": result.plan.touched
                if result.plan.mode == "incremental"
                else None,
            },
            "batches": batches,
            "counts": counts,
            "rows_in": sum(b.get("rows_in", 0) for b in batches),
            "rows_quarantined": sum(b.get("rows_quarantined", 0) for b in batches),
            "cohort_patients": result.cohort_patients,
            "cases": {
                "open": result.open_cases,
                "excluded": result.excluded_cases,
                "new": result.new_cases,
                "persisting": result.persisting_cases,
                "resolved": result.resolved_cases,
                "resolved_data_corrected": result.resolved_by_data,
                "resolved_policy_change": result.resolved_by_policy,
                "info": result.info_cases,
                "by_rule": result.cases_by_rule,
            },
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        }
        conn.execute(
            "update audit.runs set finished_at = %s, as_of = %s, status = %s, summary = %s"
            " where run_id = %s",
            (
                finished,
                result.as_of,
                "rejected" if counts["rejected"] else "ok",
                Jsonb(summary),
                run_id,
            ),  # fmt: skip
        )
    return summary


def release_report_hold(conn: psycopg.Connection) -> None:
    """Release the shared hold an audit kept for its reports (if any)."""
    if conn.closed or conn.broken:
        return
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        conn.execute("select pg_advisory_unlock_shared(%s)", (db.LOADER_LOCK_KEY,))
        conn.commit()
    except psycopg.Error:
        pass  # the session ends with the command, and its locks with it


def report(
    conn: psycopg.Connection,
    summary: dict,
    out: Path,
    shared: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write the run's report folder; ``run.json`` last, then ``latest``.

    The reports read the derived tables that the next audit rebuilds, so they
    are written under the shared form of the loader's advisory lock: no load
    or audit runs meanwhile (reports may run side by side). If another audit
    finished in between, its run is the one reported: the derived tables
    describe it.
    """
    progress = progress or (lambda msg: None)
    with conn.transaction():
        db.take_loader_lock(conn, shared=True)
        latest = latest_summary(conn)
        if latest and latest["run_id"] != summary["run_id"]:
            progress(f"a newer audit ran meanwhile: reporting its run {latest['run_id']}")
            summary = latest
        run_id = summary["run_id"]
        out.mkdir(parents=True, exist_ok=True)
        clear_leftovers(out, progress)
        # The folder is written under a temporary name and renamed into place
        # with run.json in it: a killed writer leaves no half folder behind.
        work = out / f".{run_id}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        work.mkdir()
        progress("reports")
        t = time.perf_counter()
        summary = dict(summary)
        try:
            summary["report_files"] = reports.write_reports(conn, run_id, work, summary, shared)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    summary["timings_s"] = {**summary.get("timings_s", {}),
                            "reports": round(time.perf_counter() - t, 3)}  # fmt: skip
    run_dir = out / run_id
    summary["report_dir"] = str(run_dir)
    write_json(work / "run.json", {k: v for k, v in summary.items() if k != "report_dir"})
    move_into_place(work, run_dir)
    point_latest(out, run_dir)
    return summary


def latest_summary(conn: psycopg.Connection) -> dict | None:
    row = conn.execute(
        "select summary from audit.runs where status in ('ok', 'rejected')"
        " order by finished_at desc, run_id desc limit 1"
    ).fetchone()
    return row[0] if row else None


def run(
    batch_dirs: list[Path],
    out: Path,
    settings: LoadSettings | None = None,
    progress: Callable[[str], None] | None = None,
    policy_path: Path | None = None,
    shared: bool = False,
    full_audit: bool = False,
) -> dict:
    """Ingest ``batch_dirs`` in order, evaluate the rules, write the run folder.

    A run that loaded nothing new and rejected every batch it was given
    neither audits nor reports: its summary says so (``status`` rejected,
    no ``report_dir``). A run whose reports fail is recorded as failed, with
    the reason, and ``latest`` does not move.
    """
    progress = progress or (lambda msg: None)
    pol = policy.load(policy_path)
    t0 = time.perf_counter()
    with db.session() as conn:
        progress(f"database {db.where()}")
        batches = ingest_batches(conn, batch_dirs, settings, progress)
        if batches and all(b["status"] == "rejected" for b in batches):
            return {
                "status": "rejected",
                "batches": batches,
                "counts": {"loaded": 0, "duplicate": 0, "rejected": len(batches)},
            }
        timings = {"ingest": time.perf_counter() - t0}
        try:
            summary = audit(
                conn, pol, batches, progress, timings, full=full_audit, hold_for_report=True
            )
            summary["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
            return _report_or_fail(conn, summary, out, shared, progress)
        finally:
            release_report_hold(conn)


def withdraw(
    batch_id: str,
    reason: str,
    by: str,
    out: Path,
    progress: Callable[[str], None] | None = None,
    policy_path: Path | None = None,
    shared: bool = False,
) -> tuple[dict, dict]:
    """Withdraw a loaded batch, then run a full audit and write its reports.

    Returns what the withdrawal did and the audit's summary.
    """
    from audit import batches as batch_log

    progress = progress or (lambda msg: None)
    pol = policy.load(policy_path)
    with db.read_session() as conn:
        done = batch_log.withdraw(conn, batch_id, reason, by)
        progress(f"batch {batch_id} withdrawn: a full audit follows")
        try:
            summary = audit(conn, pol, [], progress, {}, full=True, hold_for_report=True)
            with conn.transaction():  # the cases the withdrawal resolved, on its batch
                resolved = conn.execute(
                    "update audit.batches set cases_resolved = (select count(*) from audit.cases"
                    " where resolved_run = %(run)s and resolved_reason = %(why)s)"
                    " where batch_id = %(b)s returning cases_resolved",
                    {"run": summary["run_id"], "why": f"batch {batch_id} withdrawn",
                     "b": batch_id},
                ).fetchone()[0]  # fmt: skip
            done["cases_resolved"] = resolved
            return done, _report_or_fail(conn, summary, out, shared, progress)
        finally:
            release_report_hold(conn)


def _report_or_fail(conn, summary: dict, out: Path, shared: bool, progress) -> dict:
    """Write the reports; a failure marks the run failed, with its reason."""
    try:
        return report(conn, summary, out, shared, progress)
    except Exception as exc:
        reason = f"writing the reports to {out} failed ({type(exc).__name__}: {exc})"
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        with conn.transaction():
            conn.execute(
                "update audit.runs set status = 'failed',"
                " summary = summary || jsonb_build_object('failure', %s::text)"
                " where run_id = %s",
                (reason, summary["run_id"]),
            )
        raise ReportFailed(f"{reason}; run {summary['run_id']} is recorded as failed") from exc
