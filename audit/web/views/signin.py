"""Sign-in and sign-out."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from audit import users
from audit.web import session
from audit.web.guard import HEADERS
from audit.web.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_MINUTES,
    Signed,
    Workspace,
    secure,
    set_session_cookie,
    to_login,
)


def login_form(ws: Workspace, request: Request, form=None) -> Response:
    nonce = secrets.token_urlsafe(24)
    resp = ws.page("login.html", title="Sign in", me=None, csrf=ws.csrf_for("login:" + nonce))
    resp.set_cookie(LOGIN_CSRF_COOKIE, nonce, httponly=True, samesite="strict",
                    secure=secure(request), path="/login")  # fmt: skip
    return resp


def login(ws: Workspace, request: Request, form) -> Response:
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    given = str(form.get("csrf_token") or "")
    if not nonce or not hmac.compare_digest(given, ws.csrf_for("login:" + nonce)):
        return ws.page("error.html", 403, me=None, title="Refused",
                       message="The sign-in form was not accepted: open it again.")  # fmt: skip
    name = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    if "\x00" in name or "\x00" in password:
        name = ""  # no account has one: a failed sign-in, not a 500
    who = (name, request.client.host if request.client else "")

    def again(status: int, error: str) -> Response:
        return ws.page("login.html", status, me=None, title="Sign in", csrf=given, error=error)

    if ws.limiter.blocked(who):
        return again(429, "Too many failed attempts: wait a few minutes.")
    if not ws.hashing.acquire(timeout=session.SIGN_IN_WAIT_S):
        # each password hash takes 64 MiB: their number at once is bounded
        return again(503, "Too many sign-ins at once: try again in a moment.")
    try:
        conn = ws.connect(None)
        try:
            # the database checks the password and counts failures per name
            token = users.sign_in(conn, name, password, SESSION_MINUTES) if name else None
            conn.commit()
        finally:
            ws.release(conn)
    finally:
        ws.hashing.release()
    if token == "locked":
        ws.limiter.failed(who)
        return again(429, "Too many failed attempts: wait a few minutes.")
    if token is None:
        ws.limiter.failed(who)
        return again(401, "Unknown user name or wrong password.")
    ws.limiter.succeeded(who)
    resp = RedirectResponse("/", status_code=303, headers=HEADERS)
    set_session_cookie(resp, request, token)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


def logout(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if s.checked_form(form) is None:
            return s.refused() if s.me else to_login()
        s.conn.execute("select review.close_session()")
        s.conn.commit()
    resp = to_login()
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
