"""Cases and their reviews: recording a disposition, listing cases."""

from __future__ import annotations

import unicodedata
from typing import TextIO

from psycopg import sql

from audit import db
from audit.errors import UsageError

LIST_COLUMNS = ("case_id", "rule_id", "severity", "status", "review_status", "patient_id",
                "site_id", "case_date", "summary")  # fmt: skip


def review(case_id: str, status: str, note: str, reviewer: str) -> tuple[int, str]:
    """Append a review through ``review.add_review``: attributed, stamped by
    the database with the time and the database user, never changed
    afterwards. Never creates a database or a schema: the case must exist."""
    import psycopg

    with db.read_session() as conn:
        try:
            with conn.transaction():
                review_id = conn.execute(
                    "select review.add_review(%s, %s, %s, %s)", (case_id, status, note, reviewer)
                ).fetchone()[0]
        except psycopg.errors.NoDataFound:
            raise UsageError(f"no case {case_id}") from None
        except psycopg.errors.CheckViolation:
            raise UsageError("a review needs a non-empty note and reviewer") from None
        rule = conn.execute(
            "select rule_id from report.cases where case_id = %s", (case_id,)
        ).fetchone()
    return review_id, rule[0] if rule else ""


def list_cases(
    rule: str | None = None,
    site: str | None = None,
    status: str | None = None,
    review: str | None = None,
    limit: int = 100,
) -> tuple[list[tuple], int]:
    where = sql.SQL(
        "(%(rule)s::text is null or rule_id = %(rule)s)"
        " and (%(site)s::text is null or site_id = %(site)s)"
        " and (%(status)s::text is null or status = %(status)s)"
        " and (%(review)s::text is null or coalesce(review_status, 'none') = %(review)s)"
    )
    params = {"rule": rule, "site": site, "status": status, "review": review, "limit": limit}
    with db.read_session() as conn:
        total = conn.execute(
            sql.SQL("select count(*) from report.cases where {}").format(where), params
        ).fetchone()[0]
        rows = conn.execute(
            sql.SQL(
                "select case_id, rule_id, severity, status, coalesce(review_status, ''),"
                " patient_id, coalesce(site_id, ''), to_char(case_date, 'YYYY-MM-DD'), summary"
                " from report.cases where {} order by case_date desc, rule_id, case_id"
                " limit %(limit)s"
            ).format(where),
            params,
        ).fetchall()
    return rows, total


def cell(value: object) -> str:
    """A value for a terminal or a sheet: no control character (no escape
    sequence reaches the terminal, no tab or line break, U+2028 and U+2029
    included, splits the table), and a text a spreadsheet would read as a
    formula starts with ' (as in the CSV reports)."""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
                   for ch in str(value))  # fmt: skip
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def print_table(rows: list[tuple], out: TextIO, columns: tuple[str, ...] = LIST_COLUMNS) -> None:
    """Tab-separated, with a header: easy to read and to paste into a sheet."""
    out.write("\t".join(columns) + "\n")
    for row in rows:
        out.write("\t".join(cell(v) for v in row) + "\n")
