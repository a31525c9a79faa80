"""Which database login the workspace uses, and the check that it is a
narrow one.

Row-level security binds the web role, not a superuser nor the owner of the
tables (the pipeline's role): a workspace connected as either would show
every site to everyone. ``rxaudit serve`` therefore refuses such a login
unless told ``--insecure-dev`` (and then says so in red on every page). On
the embedded default database it creates, once, a login that is a member of
``rxaudit_web`` only, with a random password kept in ``RXAUDIT_HOME``.
"""

from __future__ import annotations

import os
import secrets

import psycopg
from psycopg import sql

from audit import db
from audit.errors import UsageError

EMBEDDED_WEB_LOGIN = "rxaudit_web_local"


def _password_file():
    return db.home_dir() / "web-login"


def embedded_web_url() -> str:
    """A URL of the embedded server as its own web login (made on first use)."""
    admin_url = db.database_url()  # starts the embedded server
    path = _password_file()
    if path.is_file():
        password = path.read_text().strip()
    else:
        password = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
    with db.session(admin_url) as conn, conn.transaction():  # the schema, with rxaudit_web
        exists = conn.execute(
            "select 1 from pg_roles where rolname = %s", (EMBEDDED_WEB_LOGIN,)
        ).fetchone()
        verb = "alter" if exists else "create"
        conn.execute(
            sql.SQL(verb + " role {} login nosuperuser nocreatedb nocreaterole password {}").format(
                sql.Identifier(EMBEDDED_WEB_LOGIN), sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("grant rxaudit_web to {}").format(sql.Identifier(EMBEDDED_WEB_LOGIN)))
    info = psycopg.conninfo.conninfo_to_dict(db.to_libpq(admin_url))
    info.update(user=EMBEDDED_WEB_LOGIN, password=password)
    return "postgresql://" + _libpq_to_url(info)


def _libpq_to_url(info: dict) -> str:
    from urllib.parse import quote

    host = info.get("host", "")
    auth = f"{quote(info['user'], safe='')}:{quote(info['password'], safe='')}@"
    netloc = auth + (quote(host, safe="") if host.startswith("/") else host)
    if host.startswith("/"):
        return f"{auth}/{quote(info.get('dbname', ''))}?host={quote(host, safe='')}" + (
            f"&port={info['port']}" if info.get("port") else "")  # fmt: skip
    port = f":{info['port']}" if info.get("port") else ""
    return f"{netloc}{port}/{quote(info.get('dbname', ''))}"


def web_url() -> tuple[str, bool]:
    """(the workspace's URL, whether it was chosen for the user: the embedded
    default's own web login)."""
    url = os.environ.get("RXAUDIT_WEB_DATABASE_URL")
    if url:
        return url, False
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"], False
    return embedded_web_url(), True


def check_narrow(url: str, insecure_dev: bool) -> bool:
    """Refuse a superuser or the pipeline's role; True when the login is one
    of those but ``insecure_dev`` lets it through."""
    with psycopg.connect(db.to_libpq(url)) as conn:
        user, superuser, pipeline, web = conn.execute(
            "select current_user, rolsuper, pg_has_role(current_user, 'rxaudit_loader', 'member'),"
            " pg_has_role(current_user, 'rxaudit_web', 'member')"
            " from pg_roles where rolname = current_user"
        ).fetchone()
    wide = superuser or pipeline or not web
    if wide and not insecure_dev:
        what = ("a superuser" if superuser else "the pipeline's role" if pipeline
                else "not a member of rxaudit_web")  # fmt: skip
        raise UsageError(
            f"refusing to serve the workspace as {user}, {what}: row-level security does not"
            " bind it, so every user would see every site. Set RXAUDIT_WEB_DATABASE_URL to a"
            " login that is a member of rxaudit_web only (docs/security.md), or pass"
            " --insecure-dev for a trial on your own machine"
        )
    return wide
