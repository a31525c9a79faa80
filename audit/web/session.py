"""The workspace's connections, sessions, CSRF tokens and single sign-on.

Every request that touches the database runs as the web role with
``rxaudit.session`` set to the request's session token: PostgreSQL decides
what the request may see and stamps what it writes. Sessions live in an
HttpOnly, SameSite=Strict cookie; every form carries a CSRF token, an HMAC
of the session under the workspace's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

import psycopg
from jinja2 import Environment, FileSystemLoader, select_autoescape
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from audit import db
from audit.web.guard import HEADERS

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "rxaudit_session"
LOGIN_CSRF_COOKIE = "rxaudit_login_csrf"
SESSION_MINUTES = 8 * 60
POOL_SIZE = 8  # idle database connections kept for the next requests
SIGN_IN_ATTEMPTS = 5  # failed attempts per user name and address ...
SIGN_IN_WINDOW_S = 300  # ... within this many seconds, then a wait
#: Password hashes computed at once (argon2id takes 64 MiB each); a sign-in
#: that waits longer than SIGN_IN_WAIT_S for one is refused (503).
SIGN_IN_CONCURRENCY = int(os.environ.get("RXAUDIT_WEB_SIGN_IN_CONCURRENCY") or 4)
SIGN_IN_WAIT_S = 5.0


def trusted_proxies() -> list[str]:
    """RXAUDIT_WEB_TRUSTED_PROXIES (default 127.0.0.1): the one setting of the
    addresses whose forwarded headers are believed, for single sign-on's user
    header and for ``X-Forwarded-Proto`` (a Secure cookie behind HTTPS)."""
    value = os.environ.get("RXAUDIT_WEB_TRUSTED_PROXIES") or "127.0.0.1"
    return [a.strip() for a in value.split(",") if a.strip()]


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


class Workspace:
    """What every handler shares: the database, the secret, the templates,
    the sign-in limiter, the single sign-on settings and a small cache."""

    def __init__(self, database_url: str | None, secret: str | None,
                 proxy_header: str | None) -> None:  # fmt: skip
        self.url = database_url or os.environ.get("RXAUDIT_WEB_DATABASE_URL") or db.database_url()
        self.key = (
            secret or os.environ.get("RXAUDIT_WEB_SECRET") or secrets.token_hex(32)
        ).encode()
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(["html"]))  # fmt: skip
        self.limiter = SignInLimiter()
        self.hashing = threading.BoundedSemaphore(max(1, SIGN_IN_CONCURRENCY))
        self.css = (HERE / "web.css").read_bytes()
        # Single sign-on behind an authenticating reverse proxy: off unless
        # RXAUDIT_WEB_PROXY_USER_HEADER names the header, and then trusted only
        # from the addresses in RXAUDIT_WEB_TRUSTED_PROXIES (default 127.0.0.1).
        self.header = (proxy_header if proxy_header is not None
                       else os.environ.get("RXAUDIT_WEB_PROXY_USER_HEADER", "")).strip()  # fmt: skip
        self.trusted = set(trusted_proxies())
        self.idle: queue.LifoQueue = queue.LifoQueue()
        self.figures: dict[tuple, dict] = {}  # the overview's aggregates, per run and reviews
        self.insecure = False  # a login row-level security does not bind (--insecure-dev)

    def proxy_user(self, request: Request) -> str | None:
        """The user the trusted proxy names, or None (off, another address,
        no header)."""
        if not self.header or not request.client or request.client.host not in self.trusted:
            return None
        name = (request.headers.get(self.header) or "").strip()
        return name or None

    def csrf_for(self, token: str) -> str:
        return hmac.new(self.key, b"csrf\x1f" + token.encode(), hashlib.sha256).hexdigest()

    def connect(self, token: str | None) -> psycopg.Connection:
        """A connection of the pool with the request's session set (and
        committed, so that no rollback of the request brings back another's)."""
        try:
            conn = self.idle.get_nowait()
        except queue.Empty:
            conn = None
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(db.to_libpq(self.url), row_factory=dict_row)
            # short queries on indexes: compiling them (JIT) costs more than it saves
            conn.execute("set jit = off")
        conn.execute("select set_config('rxaudit.session', %s, false)", (token or "",))
        conn.commit()
        return conn

    def release(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken:
            return
        try:
            conn.rollback()
            conn.execute("select set_config('rxaudit.session', '', false)")
            conn.commit()
        except psycopg.Error:
            conn.close()
            return
        if self.idle.qsize() < POOL_SIZE:
            self.idle.put(conn)
        else:
            conn.close()

    def page(self, template: str, status: int = 200, **values) -> HTMLResponse:
        html = self.env.get_template(template).render(insecure=self.insecure, **values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=secure(request), max_age=SESSION_MINUTES * 60, path="/")  # fmt: skip


def to_login() -> Response:
    return RedirectResponse("/login", status_code=303, headers=HEADERS)


class Signed:
    """The request's session and signed-in user (``me`` None when none)."""

    def __init__(self, ws: Workspace, request: Request):
        self.ws = ws
        self.token = request.cookies.get(SESSION_COOKIE) or ""
        self.conn = ws.connect(self.token)
        self.me = self.conn.execute("select * from web.me").fetchone()
        proxied = ws.proxy_user(request)
        if proxied is not None and (not self.me or self.me["user_name"] != proxied):
            self.me = None
            self.sign_in_proxied(request, proxied)
        self.csrf = ws.csrf_for(self.token) if self.me else ""

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
        self.ws.release(self.conn)

    def page(self, template: str, status: int = 200, **values) -> HTMLResponse:
        return self.ws.page(template, status, me=self.me, csrf=self.csrf, **values)

    def refused(self, message: str = "The form was not accepted (a missing or old token)"
                ) -> HTMLResponse:  # fmt: skip
        return self.page("error.html", 403, title="Refused", message=message)

    def checked_form(self, form) -> dict | None:
        given = str(form.get("csrf_token") or "")
        if not self.me or not hmac.compare_digest(given, self.csrf):
            return None
        values = {k: str(v) for k, v in form.items()}
        if any("\x00" in v for v in values.values()):
            return None  # PostgreSQL text holds no NUL: refused, not a 500
        return values
