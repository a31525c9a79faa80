"""The QI team's workspace: sign-in, the overview, worklists, the case page and
reviews in the browser (Starlette, server-rendered templates, no script).

Every request that touches the database runs in one transaction as the web
role (a member of ``rxaudit_web``), with ``rxaudit.session`` set to the
request's session token: PostgreSQL decides what the request may see (the
``web`` views keep the signed-in user's sites) and stamps what it writes
(``review.web_review``, ``review.log_access``); see docs/security.md, "The
workspace's access model". The application adds what a browser needs:
sessions in an HttpOnly, SameSite=Strict cookie, a CSRF token on every form,
rate-limited sign-in, security headers, and escaping of every value (Jinja2
autoescape; CSV cells as in the report files).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import math
import os
import queue
import re
import secrets
import time
from collections import defaultdict, deque
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from jinja2 import Environment, FileSystemLoader, select_autoescape
from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from audit import db, overview, users
from audit.web import charts

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "rxaudit_session"
LOGIN_CSRF_COOKIE = "rxaudit_login_csrf"
SESSION_MINUTES = 8 * 60
PAGE_ROWS = 100
POOL_SIZE = 8  # idle database connections kept for the next requests
SIGN_IN_ATTEMPTS = 5  # failed attempts per user name and address ...
SIGN_IN_WINDOW_S = 300  # ... within this many seconds, then a wait
STATUSES = ("confirmed", "justified", "false_positive", "reopened")
CSV_COLUMNS = ("case_id", "rule_id", "rule_title", "severity", "status", "review_status",
               "patient_id", "site_id", "prescriber_id", "case_date", "summary")  # fmt: skip
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def csv_cell(value: object) -> str:
    """As ``audit.csv_safe`` in the report files: a leading = + - @ tab or CR gets '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class SignInLimiter:
    """At most SIGN_IN_ATTEMPTS failures per (user name, address) per window."""

    def __init__(self) -> None:
        self.failures: dict[tuple[str, str], deque] = defaultdict(deque)

    def blocked(self, key: tuple[str, str]) -> bool:
        q = self.failures[key]
        while q and q[0] < time.monotonic() - SIGN_IN_WINDOW_S:
            q.popleft()
        return len(q) >= SIGN_IN_ATTEMPTS

    def failed(self, key: tuple[str, str]) -> None:
        self.failures[key].append(time.monotonic())

    def succeeded(self, key: tuple[str, str]) -> None:
        self.failures.pop(key, None)


def create_app(database_url: str | None = None, secret: str | None = None,
               proxy_header: str | None = None):  # fmt: skip
    """The workspace over ``database_url`` (the web role's login; default
    ``RXAUDIT_WEB_DATABASE_URL``, else ``DATABASE_URL``); ``proxy_header``
    (default ``RXAUDIT_WEB_PROXY_USER_HEADER``): see docs/security.md."""
    url = database_url or os.environ.get("RXAUDIT_WEB_DATABASE_URL") or db.database_url()
    key = (secret or os.environ.get("RXAUDIT_WEB_SECRET") or secrets.token_hex(32)).encode()
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]))  # fmt: skip
    limiter = SignInLimiter()
    css = (HERE / "web.css").read_bytes()

    # Single sign-on behind an authenticating reverse proxy: off unless
    # RXAUDIT_WEB_PROXY_USER_HEADER names the header, and then trusted only
    # from the addresses in RXAUDIT_WEB_TRUSTED_PROXIES (default 127.0.0.1).
    header = (proxy_header if proxy_header is not None
              else os.environ.get("RXAUDIT_WEB_PROXY_USER_HEADER", "")).strip()  # fmt: skip
    trusted = {a.strip() for a in (os.environ.get("RXAUDIT_WEB_TRUSTED_PROXIES") or "127.0.0.1")
               .split(",") if a.strip()}  # fmt: skip

    def proxy_user(request: Request) -> str | None:
        """The user the trusted proxy names, or None (off, another address,
        no header)."""
        if not header or not request.client or request.client.host not in trusted:
            return None
        name = (request.headers.get(header) or "").strip()
        return name or None

    def csrf_for(token: str) -> str:
        return hmac.new(key, b"csrf\x1f" + token.encode(), hashlib.sha256).hexdigest()

    idle: queue.LifoQueue = queue.LifoQueue()

    def connect(token: str | None) -> psycopg.Connection:
        """A connection of the pool with the request's session set (and
        committed, so that no rollback of the request brings back another's)."""
        try:
            conn = idle.get_nowait()
        except queue.Empty:
            conn = None
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(db.to_libpq(url), row_factory=dict_row)
            # short queries on indexes: compiling them (JIT) costs more than it saves
            conn.execute("set jit = off")
        conn.execute("select set_config('rxaudit.session', %s, false)", (token or "",))
        conn.commit()
        return conn

    def release(conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken:
            return
        try:
            conn.rollback()
            conn.execute("select set_config('rxaudit.session', '', false)")
            conn.commit()
        except psycopg.Error:
            conn.close()
            return
        if idle.qsize() < POOL_SIZE:
            idle.put(conn)
        else:
            conn.close()

    def page(template: str, status: int = 200, **values) -> HTMLResponse:
        html = env.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    class Signed:
        """The request's session and signed-in user (``me`` None when none)."""

        def __init__(self, request: Request):
            self.token = request.cookies.get(SESSION_COOKIE) or ""
            self.conn = connect(self.token)
            self.me = self.conn.execute("select * from web.me").fetchone()
            proxied = proxy_user(request)
            if proxied is not None and (not self.me or self.me["user_name"] != proxied):
                self.me = None
                self.sign_in_proxied(request, proxied)
            self.csrf = csrf_for(self.token) if self.me else ""

        def sign_in_proxied(self, request: Request, name: str) -> None:
            """Single sign-on: the trusted proxy vouches for ``name``; a session
            opens for it (a known, enabled account) and its cookie is set on
            the response (``request.state.new_session``)."""
            try:
                self.token = self.conn.execute(
                    "select review.open_session(%s, %s) as t", (name, SESSION_MINUTES)
                ).fetchone()["t"]
            except psycopg.errors.InvalidAuthorizationSpecification:
                self.conn.rollback()
                self.conn.execute("select review.log_access('failed proxy sign-in', null, 0)")
                self.conn.commit()
                return
            self.conn.execute("select set_config('rxaudit.session', %s, false)", (self.token,))
            self.conn.commit()
            self.me = self.conn.execute("select * from web.me").fetchone()
            request.state.new_session = self.token

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            release(self.conn)

        def page(self, template: str, status: int = 200, **values) -> HTMLResponse:
            return page(template, status, me=self.me, csrf=self.csrf, **values)

        def checked_form(self, form) -> dict | None:
            given = str(form.get("csrf_token") or "")
            if not self.me or not hmac.compare_digest(given, self.csrf):
                return None
            values = {k: str(v) for k, v in form.items()}
            if any("\x00" in v for v in values.values()):
                return None  # PostgreSQL text holds no NUL: refused, not a 500
            return values

    def to_login() -> Response:
        return RedirectResponse("/login", status_code=303, headers=HEADERS)

    def refused(s: Signed, message: str = "The form was not accepted (a missing or old token)"
                ) -> HTMLResponse:  # fmt: skip
        return s.page("error.html", 403, title="Refused", message=message)

    # -- sign-in -------------------------------------------------------------

    def login_form(request: Request, form=None) -> Response:
        nonce = secrets.token_urlsafe(24)
        resp = page("login.html", title="Sign in", me=None, csrf=csrf_for("login:" + nonce))
        resp.set_cookie(LOGIN_CSRF_COOKIE, nonce, httponly=True, samesite="strict",
                        secure=secure(request), path="/login")  # fmt: skip
        return resp

    def login(request: Request, form) -> Response:
        nonce = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        given = str(form.get("csrf_token") or "")
        if not nonce or not hmac.compare_digest(given, csrf_for("login:" + nonce)):
            return page("error.html", 403, me=None, title="Refused",
                        message="The sign-in form was not accepted: open it again.")  # fmt: skip
        name = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        if "\x00" in name or "\x00" in password:
            name = ""  # no account has one: a failed sign-in, not a 500
        who = (name, request.client.host if request.client else "")
        if limiter.blocked(who):
            return page("login.html", 429, me=None, title="Sign in", csrf=given,
                        error="Too many failed attempts: wait a few minutes.")  # fmt: skip
        conn = connect(None)
        try:
            # the database checks the password and counts failures per name
            token = users.sign_in(conn, name, password, SESSION_MINUTES) if name else None
            conn.commit()
        finally:
            release(conn)
        if token == "locked":
            limiter.failed(who)
            return page("login.html", 429, me=None, title="Sign in", csrf=given,
                        error="Too many failed attempts: wait a few minutes.")  # fmt: skip
        ok = token is not None
        if not ok:
            limiter.failed(who)
            return page("login.html", 401, me=None, title="Sign in", csrf=given,
                        error="Unknown user name or wrong password.")  # fmt: skip
        limiter.succeeded(who)
        resp = RedirectResponse("/", status_code=303, headers=HEADERS)
        resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=secure(request), max_age=SESSION_MINUTES * 60, path="/")  # fmt: skip
        resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return resp

    def logout(request: Request, form=None) -> Response:
        with Signed(request) as s:
            if s.checked_form(form) is None:
                return refused(s) if s.me else to_login()
            s.conn.execute("select review.close_session()")
            s.conn.commit()
        resp = to_login()
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    # -- pages -----------------------------------------------------------------

    figures: dict[tuple, dict] = {}  # the overview's aggregates, per run and review state

    def overview_figures(s: Signed, quarter: str | None) -> dict:
        """Headlines, trend and heat map (audit.overview) of the latest run,
        with the numerators after review as the reviews stand now. All but the
        heat map of the asked quarter are kept until the next run or review."""
        state = s.conn.execute("select * from web.overview_state").fetchone() or {}
        key = (state.get("run_id"), state.get("last_review_id"))
        base = figures.get(key)
        if base is None:
            rules = s.conn.execute(
                "select rule_id, title, severity, report_order, matures_days from web.rules"
                " order by report_order, rule_id"
            ).fetchall()
            now = {(r["rule_id"], r["period"], r["site_id"]): r["numerator_after_review"]
                   for r in s.conn.execute("select * from web.rule_counts_now")}  # fmt: skip
            rows = s.conn.execute(
                "select measure_id, period, site_id, denominator, numerator, outlier"
                " from web.measures where kind = 'rule' and prescriber_id is null"
            ).fetchall()
            for r in rows:
                r["numerator_after_review"] = now.get(
                    (r["measure_id"], r["period"], r["site_id"]), 0)  # fmt: skip
            heads = overview.headlines(rules, rows, state.get("as_of"))
            periods = sorted({r["period"] for r in rows})
            base = {"as_of": state.get("as_of"), "run_id": state.get("run_id"),
                    "last_review_id": state.get("last_review_id"), "headlines": heads,
                    "periods": periods, "rules": rules, "rows": rows,
                    "trend": charts.trend(overview.trend(heads, rows)) if periods else ""}  # fmt: skip
            if len(figures) > 64:
                figures.clear()
            figures[key] = base
        periods = base["periods"]
        chosen = quarter if quarter in periods else (periods[-1] if periods else None)
        heat = overview.heatmap(base["rules"], base["rows"], chosen, base["as_of"])
        return {**base, "quarter": chosen, "heat": heat}

    def overview_page(request: Request, form=None) -> Response:
        with Signed(request) as s:
            if not s.me:
                return to_login()
            fig = overview_figures(s, request.query_params.get("quarter"))
            key = ("mine", fig["run_id"], fig["last_review_id"], s.me["role"],
                   tuple(s.me["sites"] or ()))  # fmt: skip
            mine = figures.get(key)
            if mine is None:
                mine = figures[key] = {r["rule_id"]: r for r in s.conn.execute(
                    "select rule_id, count(*) as open, count(*) filter (where reviewed)"
                    " as reviewed from web.case_index where status = 'open' group by rule_id")}  # fmt: skip
            return s.page("overview.html", title="Overview", fig=fig, mine=mine)

    FILTERS = ("rule", "site", "prescriber", "severity", "status", "review", "quarter", "from",
               "to", "queue")  # fmt: skip
    QUARTER = re.compile(r"\d{4}-Q[1-4]")

    def filters(request: Request, me: dict) -> tuple[dict, str, dict]:
        """The worklist's filters from the query string, and their bound values.
        ``queue=mine``: the cases whose latest assignment is to the user."""
        q = request.query_params
        f = {k: (q.get(k) or None) for k in FILTERS}
        where = dict(f)
        for k in ("from", "to"):
            try:
                where[k] = dt.date.fromisoformat(f[k]) if f[k] else None
            except ValueError:
                where[k] = f[k] = None
        if f["quarter"] and QUARTER.fullmatch(f["quarter"]):
            # a quarter is its case dates (within any from/to also given)
            lo, hi = overview.quarter_bounds(f["quarter"])
            where["from"] = max(lo, where["from"]) if where["from"] else lo
            where["to"] = min(hi, where["to"]) if where["to"] else hi
        else:
            f["quarter"] = None
        where.pop("quarter")
        where["mine"] = me["user_name"] if f["queue"] == "mine" else None
        query = urlencode({k: v for k, v in f.items() if v})
        return f, query, where

    # The worklist's filters and paging run in PostgreSQL (migration 0018):
    # review.web_worklist gives a page of the visible cases' ids, newest
    # first, from the case-date index; review.web_worklist_count their count.
    args = ("%(rule)s, %(site)s, %(prescriber)s, %(severity)s, %(status)s, %(from)s::date,"
            " %(to)s::date, %(review)s, %(mine)s")  # fmt: skip
    count_sql = f"select review.web_worklist_count({args}) as n"
    ids_sql = f"select review.web_worklist({args}, %(limit)s, %(offset)s) as case_id"

    def listed(s: Signed, where: dict, limit: int | None, offset: int) -> list[dict]:
        """The rows of one page (``limit`` None: all), in the worklist's order:
        the ids from review.web_worklist, the rows from web.cases by key."""
        ids = [r["case_id"] for r in s.conn.execute(
            ids_sql, {**where, "limit": limit, "offset": offset})]  # fmt: skip
        found = {r["case_id"]: r for r in s.conn.execute(
            "select * from web.cases where case_id = any(%s)", (ids,))}  # fmt: skip
        return [found[i] for i in ids if i in found]

    def worklist(request: Request, form=None) -> Response:
        with Signed(request) as s:
            if not s.me:
                return to_login()
            f, query, where = filters(request, s.me)
            total = s.conn.execute(count_sql, where).fetchone()["n"]
            pages = max(1, math.ceil(total / PAGE_ROWS))
            try:
                page_no = min(max(1, int(request.query_params.get("page") or 1)), pages)
            except ValueError:
                page_no = 1
            rows = listed(s, where, PAGE_ROWS, (page_no - 1) * PAGE_ROWS)
            s.conn.execute(
                "select review.log_access('worklist', %s, %s)", (query or None, len(rows))
            )
            s.conn.commit()
            return s.page("cases.html", title="Worklist", cases=rows, total=total, page=page_no,
                          pages=pages, f=f, query=query)  # fmt: skip

    def export(request: Request, form=None) -> Response:
        with Signed(request) as s:
            if not s.me:
                return to_login()
            _, query, where = filters(request, s.me)
            rows = listed(s, where, None, 0)
            out = io.StringIO()
            w = csv.writer(out, lineterminator="\n")
            w.writerow(CSV_COLUMNS)
            for r in rows:
                w.writerow([csv_cell(r[c]) for c in CSV_COLUMNS])
            s.conn.execute("select review.log_access('export', %s, %s)", (query or None, len(rows)))
            s.conn.commit()
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
                **HEADERS, "Content-Disposition": 'attachment; filename="cases.csv"'})  # fmt: skip

    def case_page(request: Request, form=None) -> Response:
        case_id = request.path_params["case_id"]
        with Signed(request) as s:
            if not s.me:
                return to_login()
            c = s.conn.execute("select * from web.cases where case_id = %s", (case_id,)).fetchone()
            if c is None:
                s.conn.execute("select review.log_access('case page refused', %s, 0)", (case_id,))
                s.conn.commit()
                return s.page("error.html", 404, title="Not found",
                              message="No such case at your sites.")  # fmt: skip
            reviews = s.conn.execute(
                "select * from web.reviews where case_id = %s order by review_id desc", (case_id,)
            ).fetchall()
            assigned = s.conn.execute(
                "select assignee from web.assignments where case_id = %s"
                " order by assignment_id desc limit 1",
                (case_id,),
            ).fetchone()
            sources = s.conn.execute(
                "select * from web.case_sources where case_id = %s"
                " order by file_name, record_id, batch_id",
                (case_id,),
            ).fetchall()
            runs = s.conn.execute(
                "select * from web.runs where run_id = any(%s) order by finished_at",
                ([c["first_seen_run"], c["last_seen_run"]],),
            ).fetchall()
            patient = (
                s.conn.execute(
                    "select index_date, next_step, next_step_reason from web.case_patient"
                    " where case_id = %s",
                    (case_id,),
                ).fetchone()
                or {}
            )
            items = s.conn.execute(
                "select kind, start_on, end_on, label from web.case_timeline where case_id = %s"
                " order by start_on, kind, label",
                (case_id,),
            ).fetchall()
            s.conn.execute("select review.log_access('case page', %s, 1)", (case_id,))
            s.conn.commit()
            as_of = {r["run_id"]: r["as_of"] for r in runs}

            def seen(run_id):  # the day the run's data stood, then the run
                return f"{as_of[run_id]} (run {run_id})" if as_of.get(run_id) else run_id

            values = {**c, "first_seen": seen(c["first_seen_run"]),
                      "last_seen": seen(c["last_seen_run"])}  # fmt: skip
            facts = [(label, values.get(key)) for label, key in overview.CASE_FACTS]
            return s.page("case.html", title=c["rule_title"] or c["rule_id"], c=c, reviews=reviews,
                          next_step=patient.get("next_step"),
                          next_step_reason=patient.get("next_step_reason"), facts=facts,
                          timeline=charts.timeline(items, patient.get("index_date"),
                                                   c["case_date"]),
                          index_date=patient.get("index_date"),
                          assignee=assigned["assignee"] if assigned else None,
                          sources=sources, runs=runs,
                          conflict=conflict(reviews))  # fmt: skip

    def case_action(request: Request, form, act) -> Response:
        """A form posted on a case page: checked, done by ``act(s, case_id,
        form)`` (None when done, else the page to show), then back to the case."""
        case_id = request.path_params["case_id"]
        with Signed(request) as s:
            form = s.checked_form(form)
            if form is None:
                return refused(s) if s.me else to_login()
            try:
                shown = act(s, case_id, form)
                s.conn.commit()
            except psycopg.errors.InsufficientPrivilege:
                s.conn.rollback()
                return refused(s, "Only a lead assigns cases.")
            except psycopg.errors.NoDataFound:
                s.conn.rollback()
                return s.page("error.html", 404, title="Not found",
                              message="No such case at your sites, or no such reviewer there.")  # fmt: skip
            if shown is not None:
                return shown
        return RedirectResponse(f"/cases/{case_id}", status_code=303, headers=HEADERS)

    def review_act(s: Signed, case_id: str, form: dict) -> Response | None:
        status, note = form.get("status", ""), form.get("note", "").strip()
        if len(note) > MAX_NOTE:
            return s.page("error.html", 400, title="Not recorded",
                          message=f"A note holds at most {MAX_NOTE:,} characters.")  # fmt: skip
        if status not in STATUSES or not note:
            return s.page("error.html", 400, title="Not recorded",
                          message="A review needs a disposition and a note.")  # fmt: skip
        s.conn.execute("select review.web_review(%s, %s, %s)", (case_id, status, note))
        return None

    def assign_act(s: Signed, case_id: str, form: dict) -> None:
        s.conn.execute("select review.web_assign(%s, %s)",
                       (case_id, form.get("assignee", "").strip()))  # fmt: skip

    def add_review(request: Request, form=None) -> Response:
        return case_action(request, form, review_act)

    def assign(request: Request, form=None) -> Response:
        return case_action(request, form, assign_act)

    def access_log(request: Request, form=None) -> Response:
        with Signed(request) as s:
            if not s.me:
                return to_login()
            if s.me["role"] != "auditor":
                return refused(s, "The access log is for auditors.")
            rows = s.conn.execute(
                "select * from web.access_log order by log_id desc limit 500"
            ).fetchall()
            return s.page("access_log.html", title="Access log", rows=rows)

    def batch_list(request: Request, form=None) -> Response:
        with Signed(request) as s:
            if not s.me:
                return to_login()
            if s.me["role"] != "auditor":
                return refused(s, "The batches are for auditors.")
            rows = s.conn.execute("select * from web.batches order by batch_no desc").fetchall()
            return s.page("batches.html", title="Batches", rows=rows)

    def batch_page(request: Request, form=None) -> Response:
        with Signed(request) as s:
            if not s.me:
                return to_login()
            if s.me["role"] != "auditor":
                return refused(s, "The batches are for auditors.")
            b = s.conn.execute("select * from web.batches where batch_id = %s",
                               (request.path_params["batch_id"],)).fetchone()  # fmt: skip
            if b is None:
                return s.page("error.html", 404, title="Not found", message="No such batch.")
            checks = s.conn.execute(
                "select * from web.batch_validation where batch_id = %s order by file_name",
                (b["batch_id"],),
            ).fetchall()
            return s.page("batch.html", title=f"Batch {b['batch_id']}", b=b, checks=checks)

    def stylesheet(request: Request, form=None) -> Response:
        return Response(css, media_type="text/css", headers=HEADERS)

    def health(request: Request, form=None) -> Response:
        return PlainTextResponse("ok", headers=HEADERS)

    def endpoint(handler):
        """The handler in a worker thread (its database calls block), with
        the form of a POST read first."""

        async def run(request: Request) -> Response:
            form = await request.form() if request.method == "POST" else None
            response = await run_in_threadpool(handler, request, form)
            token = getattr(request.state, "new_session", None)
            if token:
                response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                                    secure=secure(request), max_age=SESSION_MINUTES * 60,
                                    path="/")  # fmt: skip
            return response

        return run

    return _Guard(Starlette(routes=[
        Route("/login", endpoint(login_form), methods=["GET"]),
        Route("/login", endpoint(login), methods=["POST"]),
        Route("/logout", endpoint(logout), methods=["POST"]),
        Route("/", endpoint(overview_page)),
        Route("/cases", endpoint(worklist)),
        Route("/cases.csv", endpoint(export)),
        Route("/cases/{case_id}", endpoint(case_page)),
        Route("/cases/{case_id}/reviews", endpoint(add_review), methods=["POST"]),
        Route("/cases/{case_id}/assignments", endpoint(assign), methods=["POST"]),
        Route("/access-log", endpoint(access_log)),
        Route("/batches", endpoint(batch_list)),
        Route("/batches/{batch_id}", endpoint(batch_page)),
        Route("/static/web.css", endpoint(stylesheet)),
        Route("/healthz", endpoint(health)),
    ]))  # fmt: skip


MAX_NOTE = 4000  # characters of a review note (the form says so; the server holds it)


class _Guard:
    """Around the application: an address with a NUL byte (``%00``) is a
    400 before any handler runs (PostgreSQL text holds no NUL), and every
    answer, the framework's own 404 and 405 too, carries the security headers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        where = (scope.get("raw_path") or b"") + b"?" + (scope.get("query_string") or b"")
        if b"%00" in where or b"\x00" in where or "\x00" in scope.get("path", ""):
            resp = HTMLResponse("<p>Bad request.</p>", status_code=400, headers=HEADERS)
            return await resp(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()
                            if k.lower().encode() not in have]  # fmt: skip
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, with_headers)


def conflict(reviews: list[dict]) -> str | None:
    """Reviewers whose latest dispositions disagree, unless a lead reviewed
    after them (the lead settles it): 'alice confirmed, bob false_positive'."""
    latest: dict[str, dict] = {}
    for r in sorted(reviews, key=lambda r: r["review_id"]):
        latest[r["reviewer"]] = r
    if len({r["status"] for r in latest.values()}) < 2:
        return None
    newest = max(reviews, key=lambda r: r["review_id"])
    if newest.get("reviewer_role") == "lead":
        return None
    return ", ".join(f"{who} {r['status']}" for who, r in sorted(latest.items()))
