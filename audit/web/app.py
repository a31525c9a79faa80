"""The QI team's workspace: sign-in, the overview, worklists, the case page and
reviews in the browser (Starlette, server-rendered templates, no script).

Every request that touches the database runs in one transaction as the web
role (a member of ``rxaudit_web``), with ``rxaudit.session`` set to the
request's session token: PostgreSQL decides what the request may see (the
``web`` views keep the signed-in user's sites) and stamps what it writes
(``review.web_review``, ``review.log_access``); see docs/security.md, "The
workspace's access model". The application adds what a browser needs
(:mod:`~audit.web.session`: sessions in an HttpOnly, SameSite=Strict cookie,
a CSRF token on every form, rate-limited sign-in; :mod:`~audit.web.guard`:
security headers) and escapes every value (Jinja2 autoescape; CSV cells as
in the report files). The pages are in :mod:`audit.web.views`.
"""

from __future__ import annotations

from functools import partial

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from audit.web.guard import HEADERS, Guard
from audit.web.session import SIGN_IN_ATTEMPTS, Workspace, set_session_cookie, trusted_proxies
from audit.web.views import auditor, cases, overview_page, reviews, signin

__all__ = ["SIGN_IN_ATTEMPTS", "create_app", "server_options"]


def server_options(host: str, port: int) -> dict:
    """uvicorn's settings for ``rxaudit serve``: forwarded headers (the
    scheme, the client address) believed only from the trusted proxies, the
    same addresses single sign-on trusts."""
    return {"host": host, "port": port, "log_level": "warning", "proxy_headers": True,
            "forwarded_allow_ips": ",".join(trusted_proxies())}  # fmt: skip


def create_app(database_url: str | None = None, secret: str | None = None,
               proxy_header: str | None = None, insecure: bool = False):  # fmt: skip
    """The workspace over ``database_url`` (the web role's login; default
    ``RXAUDIT_WEB_DATABASE_URL``, else ``DATABASE_URL``); ``proxy_header``
    (default ``RXAUDIT_WEB_PROXY_USER_HEADER``): see docs/security.md."""
    ws = Workspace(database_url, secret, proxy_header)
    ws.insecure = insecure

    def stylesheet(ws: Workspace, request: Request, form=None) -> Response:
        return Response(ws.css, media_type="text/css", headers=HEADERS)

    def health(ws: Workspace, request: Request, form=None) -> Response:
        return PlainTextResponse("ok", headers=HEADERS)

    def endpoint(handler):
        """The handler in a worker thread (its database calls block), with
        the form of a POST read first."""
        bound = partial(handler, ws)

        async def run(request: Request) -> Response:
            form = await request.form() if request.method == "POST" else None
            response = await run_in_threadpool(bound, request, form)
            token = getattr(request.state, "new_session", None)
            if token:
                set_session_cookie(response, request, token)
            return response

        return run

    return Guard(Starlette(routes=[
        Route("/login", endpoint(signin.login_form), methods=["GET"]),
        Route("/login", endpoint(signin.login), methods=["POST"]),
        Route("/logout", endpoint(signin.logout), methods=["POST"]),
        Route("/", endpoint(overview_page.overview_page)),
        Route("/cases", endpoint(cases.worklist)),
        Route("/cases.csv", endpoint(cases.export)),
        Route("/cases/{case_id}", endpoint(cases.case_page)),
        Route("/cases/{case_id}/reviews", endpoint(reviews.add_review), methods=["POST"]),
        Route("/cases/{case_id}/assignments", endpoint(reviews.assign), methods=["POST"]),
        Route("/access-log", endpoint(auditor.access_log)),
        Route("/access-log.csv", endpoint(auditor.access_log_export)),
        Route("/batches", endpoint(auditor.batch_list)),
        Route("/batches/{batch_id}", endpoint(auditor.batch_page)),
        Route("/static/web.css", endpoint(stylesheet)),
        Route("/healthz", endpoint(health)),
    ]))  # fmt: skip
