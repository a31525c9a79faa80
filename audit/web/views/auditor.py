"""The auditors' pages: the access log and the batches."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from urllib.parse import urlencode

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response

from audit.web.guard import HEADERS
from audit.web.session import Signed, Workspace, to_login
from audit.web.views.cases import csv_cell

LOG_FILTERS = ("user", "case", "site", "kind", "from", "to")
LOG_PAGE = 200
LOG_COLUMNS = ("log_id", "at", "user_name", "what", "object_id", "site_id", "rows")
_LOG_WHERE = sql.SQL(
    " where (%(user)s::text is null or lower(user_name) = lower(%(user)s))"
    " and (%(case)s::text is null or object_id = %(case)s)"
    " and (%(site)s::text is null or lower(site_id) = lower(%(site)s))"
    " and (%(kind)s::text is null or what = %(kind)s)"
    " and (%(from)s::date is null or at >= %(from)s::date)"
    " and (%(to)s::date is null or at < %(to)s::date + 1)"
)


def _auditor(s: Signed, what: str, kind: str) -> Response | None:
    if not s.me:
        return to_login()
    if s.me["role"] != "auditor":
        s.conn.execute("select review.log_access(%s, null, 0)", (f"{kind} refused",))
        s.conn.commit()
        return s.refused(f"The {what} {'is' if what == 'access log' else 'are'} for auditors.")
    return None


def _log_filters(request: Request) -> tuple[dict, dict, str | None]:
    """The access log's filters, their bound values, and what is wrong with them."""
    q = request.query_params
    f = {k: (q.get(k) or "").strip() or None for k in LOG_FILTERS}
    where = dict(f)
    problem = None
    for k in ("from", "to"):
        if f[k]:
            try:
                where[k] = dt.date.fromisoformat(f[k])
            except ValueError:
                problem, where[k] = f"'{k}' must be a date YYYY-MM-DD", None
    if where["from"] and where["to"] and where["from"] > where["to"]:
        problem = "'from' is after 'to'"
    return f, where, problem


def access_log(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if (no := _auditor(s, "access log", "access log")) is not None:
            return no
        f, where, problem = _log_filters(request)
        total = s.conn.execute(sql.SQL("select count(*) as n from web.access_log") + _LOG_WHERE,
                               where).fetchone()["n"]  # fmt: skip
        pages = max(1, math.ceil(total / LOG_PAGE))
        try:
            page_no = min(max(1, int(request.query_params.get("page") or 1)), pages)
        except ValueError:
            page_no = 1
        rows = s.conn.execute(
            sql.SQL("select * from web.access_log")
            + _LOG_WHERE
            + sql.SQL(" order by log_id desc limit %(limit)s offset %(offset)s"),
            {**where, "limit": LOG_PAGE, "offset": (page_no - 1) * LOG_PAGE},
        ).fetchall()
        kinds = [r["what"] for r in s.conn.execute(
            "select distinct what from web.access_log order by 1")]  # fmt: skip
        query = urlencode({k: v for k, v in f.items() if v})
        return s.page("access_log.html", title="Access log", rows=rows, total=total,
                      page=page_no, pages=pages, f=f, query=query, kinds=kinds,
                      problem=problem)  # fmt: skip


def access_log_export(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if (no := _auditor(s, "access log", "access log")) is not None:
            return no
        f, where, problem = _log_filters(request)
        if problem:
            return s.page("error.html", 400, title="Not exported", message=problem)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(LOG_COLUMNS)
        n = 0
        for r in s.conn.execute(sql.SQL("select * from web.access_log") + _LOG_WHERE
                                + sql.SQL(" order by log_id desc"), where):  # fmt: skip
            w.writerow([csv_cell(r[c]) for c in LOG_COLUMNS])
            n += 1
        s.conn.execute("select review.log_access('access log export', null, %s)", (n,))
        s.conn.commit()
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            **HEADERS, "Content-Disposition": 'attachment; filename="access_log.csv"'})  # fmt: skip


def batch_list(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if (no := _auditor(s, "batches", "batches")) is not None:
            return no
        rows = s.conn.execute("select * from web.batches order by batch_no desc").fetchall()
        return s.page("batches.html", title="Batches", rows=rows)


def batch_page(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if (no := _auditor(s, "batches", "batches")) is not None:
            return no
        b = s.conn.execute("select * from web.batches where batch_id = %s",
                           (request.path_params["batch_id"],)).fetchone()  # fmt: skip
        if b is None:
            return s.page("error.html", 404, title="Not found", message="No such batch.")
        checks = s.conn.execute(
            "select * from web.batch_validation where batch_id = %s order by file_name",
            (b["batch_id"],),
        ).fetchall()
        return s.page("batch.html", title=f"Batch {b['batch_id']}", b=b, checks=checks)
