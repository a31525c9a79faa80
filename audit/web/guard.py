"""Around the workspace: what no handler should ever see, and the security
headers on every answer, the framework's own 404 and 405 included."""

from __future__ import annotations

import re
import sys
import time

from starlette.responses import HTMLResponse

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


#: No form of the workspace is larger (a 4,000-character note, percent-encoded,
#: is at most 36 KiB) or has more fields; no endpoint takes a file.
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 20


def _refuse(status: int, text: str) -> HTMLResponse:
    return HTMLResponse(f"<p>{text}</p>", status_code=status, headers=HEADERS)


async def _bounded_body(scope, receive) -> bytes | HTMLResponse:
    """The request's body, read up to MAX_BODY_BYTES (a larger one is
    refused before it is held), or the answer refusing it."""
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if kind.startswith(b"multipart/"):
        return _refuse(415, "No form here takes a file.")
    length = headers.get(b"content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return _refuse(413, "The form is larger than any form of the workspace.")
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY_BYTES:
            return _refuse(413, "The form is larger than any form of the workspace.")
    if body.count(b"&") + 1 > MAX_FIELDS:
        return _refuse(413, "The form has more fields than any form of the workspace.")
    return bytes(body)


class Guard:
    """An address with a NUL byte (``%00``) is a 400 before any handler runs
    (PostgreSQL text holds no NUL); a body is read only up to the size of the
    largest form, and a file upload is refused, before any parsing; every
    answer carries the headers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        where = (scope.get("raw_path") or b"") + b"?" + (scope.get("query_string") or b"")
        if b"%00" in where or b"\x00" in where or "\x00" in scope.get("path", ""):
            return await _refuse(400, "Bad request.")(scope, receive, send)
        if scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            body = await _bounded_body(scope, receive)
            if isinstance(body, HTMLResponse):
                return await body(scope, receive, send)
            upstream, sent = receive, False

            async def receive():  # the body once, as it was read, then the client's own
                nonlocal sent
                if sent:
                    return await upstream()
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()
                            if k.lower().encode() not in have]  # fmt: skip
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, with_headers)


_ID_SEGMENT = re.compile(r"^/(cases|batches)/[^/]+")


class AccessLog:
    """One line per request on stderr: method, path with its ids replaced by
    ``{id}`` and no query string (a filter can name a prescriber), status and
    milliseconds. The access log that says who saw what is the database's."""

    def __init__(self, app, out=None) -> None:
        self.app, self.out = app, out or sys.stderr

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), [0]

        async def seen(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, seen)
        finally:
            path = _ID_SEGMENT.sub(lambda m: f"/{m.group(1)}/{{id}}", scope.get("path", ""))
            print(f"[{time.strftime('%H:%M:%S')}] {scope.get('method')} {path} {status[0]}"
                  f" {(time.perf_counter() - t0) * 1000:.0f} ms", file=self.out, flush=True)  # fmt: skip
