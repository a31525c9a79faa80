"""The inbox and the three steps the Airflow DAGs call (ingest, audit, report).

A producer writes a batch folder into the inbox, manifest last, then drops
the flag file (``READY``) in the inbox. The ingest step takes every complete
batch waiting there (a folder with its manifest), oldest ``created_at`` first,
loads it, and moves it to ``inbox/processed/`` when it loaded (or was already
loaded) or to ``inbox/rejected/`` with a ``<name>.reason.txt`` beside it when it
was refused. A folder without a manifest is being written: it is left alone.

Each step is idempotent: a retry finds the moved folders gone and the loaded
batches recorded, an audit or a report of the same data gives the same cases
and files. These functions run without Airflow; the DAG files only wire them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from audit import db, pipeline, policy
from audit.errors import BatchRejected
from audit.ingest import LoadSettings
from audit.manifest import MANIFEST

log = logging.getLogger(__name__)

FLAG_FILE = "READY"
PROCESSED = "processed"
REJECTED = "rejected"


@dataclass
class InboxResult:
    loaded: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    #: every delivery's result, as run.json lists batches (no row values)
    batches: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"loaded": self.loaded, "duplicate": self.duplicate,
                "rejected": self.rejected, "waiting": self.waiting,
                "batches": self.batches}  # fmt: skip


def _created_at(folder: Path) -> dt.datetime:
    """The manifest's created_at, as a moment (time zones and fractions of a
    second compared as times, not as text), for ordering; a manifest that
    cannot be read or gives no valid created_at sorts first (it is rejected
    when loaded, with its reason)."""
    first = dt.datetime.min.replace(tzinfo=dt.UTC)
    try:
        doc = json.loads((folder / MANIFEST).read_bytes()[: 1 << 20])
        value = doc.get("created_at") if isinstance(doc, dict) else None
        if not isinstance(value, str):
            return first
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return ts if ts.tzinfo else first
    except (OSError, ValueError):
        return first


def pending_batches(inbox: Path) -> tuple[list[Path], list[Path]]:
    """Complete batch folders in created_at order, and those still being written."""
    complete, waiting = [], []
    for entry in sorted(inbox.iterdir()) if inbox.is_dir() else []:
        if not entry.is_dir() or entry.name in (PROCESSED, REJECTED) or entry.name.startswith("."):
            continue
        (complete if (entry / MANIFEST).is_file() else waiting).append(entry)
    complete.sort(key=lambda p: (_created_at(p), p.name))
    return complete, waiting


def _move(folder: Path, target_dir: Path) -> Path:
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / folder.name
    if target.exists():  # the same name delivered again: keep both
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = target_dir / f"{folder.name}.{stamp}"
    shutil.move(str(folder), str(target))
    return target


def ingest_inbox(
    inbox: Path, url: str | None = None, settings: LoadSettings | None = None
) -> InboxResult:
    """Load every complete batch of the inbox, in created_at order."""
    inbox = Path(inbox)
    result = InboxResult()
    complete, waiting = pending_batches(inbox)
    result.waiting = [p.name for p in waiting]
    if not complete:
        return result
    with db.session(url) as conn:
        for folder in complete:
            [doc] = pipeline.ingest_batches(conn, [folder], settings, log.info)
            result.batches.append(doc)
            status = doc["status"]
            if status == "rejected":
                moved = _move(folder, inbox / REJECTED)
                reason = doc.get("reason") or "rejected"
                (moved.parent / f"{moved.name}.reason.txt").write_text(reason + "\n")
                result.rejected.append({"batch": folder.name, "reason": reason})
                log.error("%s", reason)
            else:
                _move(folder, inbox / PROCESSED)
                getattr(result, status).append(folder.name)
                log.info("batch %s: %s", folder.name, status)
    return result


def audit_step(
    url: str | None = None, policy_path: Path | None = None, batches: list[dict] | None = None
) -> dict:
    """Evaluate the rules on everything loaded; return the run's summary.

    ``batches``: what the triggering ingest runs loaded (from their asset
    events), so that the run's summary lists them with their row counts.
    """
    with db.session(url) as conn:
        if not batches:  # not handed over (e.g. dag.test): the database knows
            batches = pipeline.batches_since_last_run(conn)
        return pipeline.audit(conn, policy.load(policy_path), batches, progress=log.info)


def batches_from_events(events) -> list[dict]:
    """The batch results carried by asset events' ``extra`` (oldest first)."""
    out: list[dict] = []
    for event in events or ():
        extra = getattr(event, "extra", None) or {}
        out.extend(b for b in extra.get("batches", []) if isinstance(b, dict))
    return out


def allow_replace_setting() -> bool:
    """The operator's switch for a deliberate mass correction: the Airflow
    Variable ``rxaudit_allow_replace`` (or ``RXAUDIT_ALLOW_REPLACE``), true/false."""
    value = os.environ.get("RXAUDIT_ALLOW_REPLACE")
    if value is None:
        try:
            from airflow.sdk import Variable

            value = Variable.get("rxaudit_allow_replace", default="false")
        except Exception:  # noqa: BLE001 - outside Airflow, or no such variable
            value = "false"
    return str(value).strip().lower() in ("1", "true", "yes")


def report_step(out: Path, url: str | None = None, shared: bool = False) -> dict:
    """Write the reports of the latest audit run."""
    with db.session(url) as conn:
        summary = pipeline.latest_summary(conn)
        if summary is None:
            raise BatchRejected("no audit run to report on yet")
        return pipeline.report(conn, summary, Path(out), shared, log.info)


def conninfo_from_airflow(conn_id: str = "rxaudit_db") -> str:
    """The libpq connection string of an Airflow connection (env or UI).

    Built from the connection's fields rather than its URI, so a Unix-socket
    host works too. Only called inside a running task, never at parse time.
    """
    from airflow.sdk import Connection

    c = Connection.get(conn_id)
    params = {
        "host": c.host or None,
        "port": str(c.port) if c.port else None,
        "dbname": c.schema or None,
        "user": c.login or None,
        "password": c.password or None,
    }
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v})


def inbox_dir() -> Path:
    return Path(os.environ.get("RXAUDIT_INBOX", "/opt/rxaudit/inbox"))


def reports_dir() -> Path:
    return Path(os.environ.get("RXAUDIT_REPORTS", "/opt/rxaudit/reports"))
