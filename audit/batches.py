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
            " to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS') as finished_at,"
            " to_char(withdrawn_at, 'YYYY-MM-DD HH24:MI:SS') as withdrawn_at, withdrawn_by,"
            " withdrawn_db_user, withdrawal_reason, withdrawal, cases_resolved from audit.batches"
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
                                            "dropped_columns", "withdrawal")]  # fmt: skip
    for key in scalar:
        out.write(f"{key}: {'' if batch[key] is None else cases.cell(batch[key])}\n")
    out.write("files:\n")
    for r in batch["replacements"]:
        sources = ", ".join(f"{b} ({n})" for b, n in r.get("from", {}).items()) or "-"
        out.write(f"  {r['file']}: {r['added']} added, {r['replaced']} replaced"
                  f" (from {sources})\n")  # fmt: skip
    for w in batch.get("withdrawal") or []:
        out.write(f"  {w['file']}: withdrawn: {w['removed']} record(s) left core,"
                  f" {w['restored']} earlier version(s) current again\n")  # fmt: skip
    for d in batch["dropped_columns"]:
        out.write(f"  {d['file']}: columns dropped: {', '.join(d['columns'])}\n")
    for q in batch["quarantine_summary"]:
        out.write(f"  {q['file']} {q['column']}: {q['rows']} row(s) quarantined, {q['reason']}"
                  f" (first line {q['first_line']})\n")  # fmt: skip


def withdraw(conn, batch_id: str, reason: str, by: str) -> dict:
    """Withdraw a loaded batch, in one transaction under the loader's lock.

    Its records leave ``core``; the versions it replaced take their place
    (current again, or superseded by what superseded the withdrawn version);
    its files stay kept as they arrived; the
    batch is marked ``withdrawn`` with who, when, why and what was done, and
    a delivery row logs it. The caller runs a full audit next (the plan sees
    the withdrawal). Returns the per-file counts.
    """
    from psycopg import sql
    from psycopg.types.json import Jsonb

    from audit import contract

    if not reason.strip() or not by.strip():
        raise UsageError("a withdrawal needs a reason and the name of who withdraws")
    with conn.transaction():
        db.take_loader_lock(conn)
        row = conn.execute(
            "select batch_no, status, source from audit.batches where batch_id = %s",
            (batch_id,),
        ).fetchone()
        if row is None:
            raise UsageError(f"no batch {batch_id}")
        batch_no, status, source = row
        if status != "loaded":
            raise UsageError(f"batch {batch_id} is {status}, not loaded: nothing to withdraw")
        done = []
        for spec in contract.FILES:
            table = sql.Identifier("core", spec.table)
            key = sql.Identifier(spec.key)
            same = sql.SQL("w.source is not distinct from c.source" if spec.per_source else "true")
            # the versions the batch replaced take its place in the history:
            # each is superseded by what superseded the withdrawn version, or
            # current again when that version was current. Withdrawals in
            # any order thus leave the versions a load without them would.
            conn.execute(
                sql.SQL(
                    "create temp table _rxaudit_withdrawn on commit drop as"
                    " select {k}, {src} as source, superseded_by from {t} where batch_no = %(b)s"
                ).format(
                    t=table, k=key, src=sql.SQL("source" if spec.per_source else "null::text")
                ),
                {"b": batch_no},
            )
            removed = conn.execute(
                sql.SQL("delete from {t} where batch_no = %(b)s").format(t=table), {"b": batch_no}
            ).rowcount
            restored = sum(current for (current,) in conn.execute(
                sql.SQL(
                    "update {t} as c set superseded_by = w.superseded_by,"
                    " is_current = w.superseded_by is null"
                    " from _rxaudit_withdrawn as w where w.{k} = c.{k} and {same}"
                    " and c.superseded_by = %(b)s returning c.is_current"
                ).format(t=table, k=key, same=same),
                {"b": batch_no},
            ))  # fmt: skip
            conn.execute("drop table _rxaudit_withdrawn")
            if removed or restored:
                done.append({"file": spec.file_name, "removed": removed, "restored": restored})
        conn.execute(
            "update audit.batches set status = 'withdrawn', withdrawn_at = now(),"
            " withdrawn_by = %s, withdrawn_db_user = session_user, withdrawal_reason = %s,"
            " withdrawal = %s where batch_no = %s",
            (by.strip(), reason.strip(), Jsonb(done), batch_no),
        )
        conn.execute(
            "insert into audit.deliveries (batch_id, content_sha256, outcome, reason)"
            " select batch_id, content_sha256, 'withdrawn', %s from audit.batches"
            " where batch_no = %s",
            (f"withdrawn by {by.strip()}: {reason.strip()}", batch_no),
        )
    return {"batch_id": batch_id, "source": source, "files": done}
