"""The auditors' pages: the access log and the batches."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from audit.web.session import Signed, Workspace, to_login


def _auditor(s: Signed, what: str) -> Response | None:
    if not s.me:
        return to_login()
    if s.me["role"] != "auditor":
        return s.refused(f"The {what} {'is' if what == 'access log' else 'are'} for auditors.")
    return None


def access_log(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if (no := _auditor(s, "access log")) is not None:
            return no
        rows = s.conn.execute(
            "select * from web.access_log order by log_id desc limit 500"
        ).fetchall()
        return s.page("access_log.html", title="Access log", rows=rows)


def batch_list(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if (no := _auditor(s, "batches")) is not None:
            return no
        rows = s.conn.execute("select * from web.batches order by batch_no desc").fetchall()
        return s.page("batches.html", title="Batches", rows=rows)


def batch_page(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if (no := _auditor(s, "batches")) is not None:
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
