"""Around the workspace: what no handler should ever see, and the security
headers on every answer, the framework's own 404 and 405 included."""

from __future__ import annotations

from starlette.responses import HTMLResponse

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class Guard:
    """An address with a NUL byte (``%00``) is a 400 before any handler runs
    (PostgreSQL text holds no NUL), and every answer carries the headers."""

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
