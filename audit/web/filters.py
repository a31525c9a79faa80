"""The worklist's filters: from the query string to bound values, and the
page of visible cases they select (filters and paging run in PostgreSQL,
migration 0018: ``review.web_worklist`` gives a page of the visible cases'
ids, newest first, from the case-date index; ``review.web_worklist_count``
their count)."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlencode

import psycopg
from starlette.requests import Request

from audit import overview

FILTERS = ("rule", "site", "prescriber", "severity", "status", "review", "quarter", "from",
           "to", "queue")  # fmt: skip
QUARTER = re.compile(r"\d{4}-Q[1-4]")

_ARGS = ("%(rule)s, %(site)s, %(prescriber)s, %(severity)s, %(status)s, %(from)s::date,"
         " %(to)s::date, %(review)s, %(mine)s")  # fmt: skip
COUNT_SQL = f"select review.web_worklist_count({_ARGS}) as n"
IDS_SQL = f"select review.web_worklist({_ARGS}, %(limit)s, %(offset)s) as case_id"


SEVERITIES = ("critical", "high", "medium", "low", "info")
STATUSES = ("open", "excluded", "resolved")
REVIEWS = ("none", "conflict", "confirmed", "justified", "false_positive", "reopened")
QUEUES = ("mine",)


def choices(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The rules, sites and prescribers of the cases the user may see."""
    out: dict[str, list[str]] = {"rule": [], "site": [], "prescriber": []}
    for kind, column in (("rule", "rule_id"), ("site", "site_id"), ("prescriber", "prescriber_id")):
        out[kind] = [r["v"] for r in conn.execute(
            f"select distinct {column} as v from web.case_index"  # noqa: S608 - a fixed column
            f" where {column} is not null order by 1")]  # fmt: skip
    return out


def filters(request: Request, me: dict, known: dict[str, list[str]] | None = None
            ) -> tuple[dict, str, dict, list[str]]:  # fmt: skip
    """The worklist's filters from the query string, their bound values, and
    what is wrong with them (a wrong filter is left out, and said).
    ``queue=mine``: the cases whose latest assignment is to the user. Rule,
    site and prescriber match the data's own spelling whatever the case."""
    q = request.query_params
    f = {k: ((q.get(k) or "").strip() or None) for k in FILTERS}
    problems: list[str] = []
    for k, allowed in (("severity", SEVERITIES), ("status", STATUSES), ("review", REVIEWS),
                       ("queue", QUEUES)):  # fmt: skip
        if f[k] and f[k] not in allowed:
            problems.append(f"{k} must be one of {', '.join(allowed)}")
            f[k] = None
    for k in ("rule", "site", "prescriber"):
        if f[k] and known is not None:
            match = next((v for v in known[k] if v.lower() == f[k].lower()), None)
            if match is None:
                problems.append(f"no case of {k} {f[k]!r} at your sites")
            f[k] = match if match is not None else f[k]
    where = dict(f)
    for k in ("from", "to"):
        try:
            where[k] = dt.date.fromisoformat(f[k]) if f[k] else None
        except ValueError:
            problems.append(f"'{k}' must be a date YYYY-MM-DD")
            where[k] = f[k] = None
    if where["from"] and where["to"] and where["from"] > where["to"]:
        problems.append("'from' is after 'to'")
    if f["quarter"] and QUARTER.fullmatch(f["quarter"]):
        # a quarter is its case dates (within any from/to also given)
        lo, hi = overview.quarter_bounds(f["quarter"])
        where["from"] = max(lo, where["from"]) if where["from"] else lo
        where["to"] = min(hi, where["to"]) if where["to"] else hi
    else:
        if f["quarter"]:
            problems.append("a quarter looks like 2025-Q4")
        f["quarter"] = None
    where.pop("quarter")
    where["mine"] = me["user_name"] if f["queue"] == "mine" else None
    query = urlencode({k: v for k, v in f.items() if v})
    return f, query, where, problems


def count(conn: psycopg.Connection, where: dict) -> int:
    return conn.execute(COUNT_SQL, where).fetchone()["n"]


def listed(conn: psycopg.Connection, where: dict, limit: int | None, offset: int) -> list[dict]:
    """The rows of one page (``limit`` None: all), in the worklist's order:
    the ids from review.web_worklist, the rows from web.cases by key."""
    ids = [r["case_id"] for r in conn.execute(IDS_SQL, {**where, "limit": limit, "offset": offset})]
    found = {r["case_id"]: r for r in conn.execute(
        "select * from web.cases where case_id = any(%s)", (ids,))}  # fmt: skip
    return [found[i] for i in ids if i in found]
