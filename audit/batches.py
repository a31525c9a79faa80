"""The loaded batches: what each added and replaced (the replacement log)."""

from __future__ import annotations

from typing import TextIO

from audit import cases, db
from audit.errors import UsageError

LIST_COLUMNS = ("batch_id", "source", "as_of", "status", "rows_in", "quarantined", "added",
                "replaced", "replaced_from", "cases_resolved", "received")  # fmt: skip


def _replaced(replacements: list[dict]) -> tuple[int, int, str]:
    added = sum(r.get("added", 0) for r in replacements)
    replaced = sum(r.get("replaced", 0) for r in replacements)
    sources: dict[str, int] = {}
    for r in replacements:
        for batch_id, n in r.get("from", {}).items():
            sources[batch_id] = sources.get(batch_id, 0) + n
    return added, replaced, ", ".join(f"{b} ({n})" for b, n in sources.items())


def list_batches() -> list[tuple]:
    """Every delivery that reached the database, oldest first."""
    with db.read_session() as conn:
        rows = conn.execute(
            "select batch_id, coalesce(source, ''), as_of::text, status, rows_in,"
            " rows_quarantined, replacements, coalesce(cases_resolved::text, ''),"
            " to_char(received_at, 'YYYY-MM-DD HH24:MI')"
            " from audit.batches order by batch_no"
        ).fetchall()
    out = []
    for batch_id, source, as_of, status, rows_in, bad, repl, resolved, received in rows:
        added, replaced, sources = _replaced(repl)
        out.append((batch_id, source, as_of, status, rows_in, bad, added, replaced, sources,
                    resolved, received))  # fmt: skip
    return out


def show(batch_id: str) -> dict:
    with db.read_session() as conn:
        cur = conn.execute(
            "select batch_id, source, schema_version, as_of::text, history_from::text, status,"
            " reason, rows_in, rows_loaded, rows_quarantined, dropped_columns,"
            " age_90_plus_patients, replacements, replace_allowed, quarantine_summary,"
            " to_char(received_at, 'YYYY-MM-DD HH24:MI:SS'),"
            " to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS') from audit.batches"
            " where batch_id = %s",
            (batch_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise UsageError(f"no batch {batch_id}")
        names = [c.name for c in cur.description]
    return dict(zip(names, row, strict=True))


def print_table(rows: list[tuple], out: TextIO) -> None:
    """Tab-separated, with a header (values escaped as ``rxaudit cases`` does)."""
    cases.print_table(rows, out, LIST_COLUMNS)


def print_batch(batch: dict, out: TextIO) -> None:
    scalar = [k for k in batch if k not in ("replacements", "quarantine_summary",
                                            "dropped_columns")]  # fmt: skip
    for key in scalar:
        out.write(f"{key}: {'' if batch[key] is None else cases.cell(batch[key])}\n")
    out.write("files:\n")
    for r in batch["replacements"]:
        sources = ", ".join(f"{b} ({n})" for b, n in r.get("from", {}).items()) or "-"
        out.write(f"  {r['file']}: {r['added']} added, {r['replaced']} replaced"
                  f" (from {sources})\n")  # fmt: skip
    for d in batch["dropped_columns"]:
        out.write(f"  {d['file']}: columns dropped: {', '.join(d['columns'])}\n")
    for q in batch["quarantine_summary"]:
        out.write(f"  {q['file']} {q['column']}: {q['rows']} row(s) quarantined, {q['reason']}"
                  f" (first line {q['first_line']})\n")  # fmt: skip
