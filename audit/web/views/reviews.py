"""Reviews and assignments posted on a case page."""

from __future__ import annotations

import psycopg
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from audit.web.guard import HEADERS
from audit.web.session import Signed, Workspace, to_login

STATUSES = ("confirmed", "justified", "false_positive", "reopened")
MAX_NOTE = 4000  # characters of a review note (the form says so; the server holds it)


def conflict(reviews: list[dict]) -> str | None:
    """The reviewers whose latest dispositions disagree, as review.disposition
    reads them: 'alice confirmed, lena false_positive'; None when they agree
    or a lead settled it (the newest review is a lead's, made once the
    earlier reviews already disagreed). A lead's disagreement is a conflict."""
    ordered = sorted(reviews, key=lambda r: r["review_id"])

    def latest(rows):
        out: dict[str, dict] = {}
        for r in rows:
            out[r["reviewer"]] = r
        return out

    now = latest(ordered)
    if len({r["status"] for r in now.values()}) < 2:
        return None
    newest = ordered[-1]
    before = latest(ordered[:-1])
    if newest.get("reviewer_role") == "lead" and len({r["status"] for r in before.values()}) > 1:
        return None
    return ", ".join(f"{who} {r['status']}" for who, r in sorted(now.items()))


def _case_action(ws: Workspace, request: Request, form, act) -> Response:
    """A form posted on a case page: checked, done by ``act(s, case_id,
    form)`` (None when done, else the page to show), then back to the case."""
    case_id = request.path_params["case_id"]
    with Signed(ws, request) as s:
        form = s.checked_form(form)
        if form is None:
            return s.refused() if s.me else to_login()
        try:
            shown = act(s, case_id, form)
            s.conn.commit()
        except psycopg.errors.InsufficientPrivilege:
            s.conn.rollback()
            return s.refused("Only a lead assigns cases.")
        except psycopg.errors.NoDataFound:
            s.conn.rollback()  # recorded: an attempt on a case not at the user's sites
            s.conn.execute("select review.log_access(%s, %s, 0)",
                           (f"{act.__name__.strip('_')} refused (not found)", case_id))  # fmt: skip
            s.conn.commit()
            return s.page("error.html", 404, title="Not found",
                          message="No such case at your sites, or no such reviewer there.")  # fmt: skip
        if shown is not None:
            return shown
    return RedirectResponse(f"/cases/{case_id}", status_code=303, headers=HEADERS)


def _review(s: Signed, case_id: str, form: dict) -> Response | None:
    status, note = form.get("status", ""), form.get("note", "").strip()
    if len(note) > MAX_NOTE:
        return s.page("error.html", 400, title="Not recorded",
                      message=f"A note holds at most {MAX_NOTE:,} characters.")  # fmt: skip
    if status not in STATUSES or not note:
        return s.page("error.html", 400, title="Not recorded",
                      message="A review needs a disposition and a note.")  # fmt: skip
    done = s.conn.execute(
        "select review.web_review(%s, %s, %s) as id", (case_id, status, note)
    ).fetchone()  # fmt: skip
    if done["id"] is None:  # refused in the database, and recorded there
        return s.refused("Auditors read cases; reviewers and leads review them.")
    return None


def _assign(s: Signed, case_id: str, form: dict) -> Response | None:
    done = s.conn.execute(
        "select review.web_assign(%s, %s) as id", (case_id, form.get("assignee", "").strip())
    ).fetchone()  # fmt: skip
    if done["id"] is None:  # refused in the database, and recorded there
        return s.refused("Only a lead assigns cases.")
    return None


def add_review(ws: Workspace, request: Request, form=None) -> Response:
    return _case_action(ws, request, form, _review)


def assign(ws: Workspace, request: Request, form=None) -> Response:
    return _case_action(ws, request, form, _assign)
