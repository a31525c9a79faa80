"""Workspace accounts: `rxaudit users add|set-password|set-sites|disable|enable|list`.

Passwords are hashed here with argon2id (memory-hard) and only the hash is
stored, in ``review.users``, through the SECURITY DEFINER functions of the
schema ``review`` (migration 0017). A password is read from standard input,
never taken as an argument (it would show in the process list and the
shell's history).
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher

from audit import db
from audit.errors import UsageError

ROLES = ("reviewer", "lead", "auditor")
MIN_PASSWORD = 12
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_hasher = PasswordHasher()


def _check(name: str, sites: list[str]) -> None:
    if not _NAME.fullmatch(name):
        raise UsageError("a user name is 1-64 characters of A-Z a-z 0-9 . _ -")
    for site in sites:
        if not _NAME.fullmatch(site):
            raise UsageError("a site is 1-64 characters of A-Z a-z 0-9 . _ -")


def _password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password must have at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def unknown_sites(conn, sites: list[str]) -> tuple[list[str], list[str]]:
    """(the given sites no loaded record names, the sites that hold data)."""
    known = [r[0] for r in conn.execute(
        "select distinct site_id from core.patients where is_current and site_id is not null"
        " union select distinct site_id from audit.cases order by 1")]  # fmt: skip
    return [s for s in sites if s not in known], known


def add(name: str, role: str, sites: list[str], password: str) -> list[str]:
    """Create the account; an existing name is refused (see :func:`set_password`).
    Returns warnings (a site with no data yet)."""
    _check(name, sites)
    if role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}")
    if role != "auditor" and not sites:
        raise UsageError("a reviewer or lead needs at least one --site")
    hashed = _password(password)
    with db.read_session() as conn, conn.transaction():
        if not conn.execute(
            "select review.add_user(%s, %s, %s, %s)", (name, role, sites, hashed)
        ).fetchone()[0]:
            raise UsageError(
                f"user {name} exists: `rxaudit users set-password {name} --password-stdin`"
                " changes the password, `set-sites` the sites"
            )
        return _site_warnings(conn, sites)


def _site_warnings(conn, sites: list[str]) -> list[str]:
    unknown, known = unknown_sites(conn, sites)
    return [
        f"no loaded record names site {s} (the sites with data: {', '.join(known) or 'none yet'})"
        for s in unknown
    ]


def set_password(name: str, password: str) -> None:
    """Change the password and end every session of the user."""
    hashed = _password(password)
    with db.read_session() as conn, conn.transaction():
        if not conn.execute("select review.set_password(%s, %s)", (name, hashed)).fetchone()[0]:
            raise UsageError(f"no user {name}")


def disable(name: str) -> None:
    """Disable the account and end its sessions."""
    with db.read_session() as conn, conn.transaction():
        if not conn.execute("select review.disable_user(%s)", (name,)).fetchone()[0]:
            raise UsageError(f"no user {name}")


def enable(name: str) -> None:
    with db.read_session() as conn, conn.transaction():
        if not conn.execute("select review.enable_user(%s)", (name,)).fetchone()[0]:
            raise UsageError(f"no user {name}")


def set_sites(name: str, sites: list[str]) -> list[str]:
    _check(name, sites)
    with db.read_session() as conn, conn.transaction():
        if not conn.execute("select review.set_user_sites(%s, %s)", (name, sites)).fetchone()[0]:
            raise UsageError(f"no user {name}")
        return _site_warnings(conn, sites)


def list_users() -> list[tuple]:
    """(name, role, sites, status, last changed) of every account, no hash."""
    with db.read_session() as conn:
        return [
            (n, role, ", ".join(sites) or "every site" if role == "auditor" else ", ".join(sites),
             "disabled" if disabled else "enabled", updated.strftime("%Y-%m-%d %H:%M"))
            for n, role, sites, disabled, _, updated in conn.execute(
                "select * from review.list_users()")
        ]  # fmt: skip


def _raw_key(params: str, hash_len: int, password: str) -> bytes:
    """The raw argon2id output for ``password`` under the stored parameters
    and salt (``$argon2id$v=19$m=...,t=...,p=...$<salt>``)."""
    import base64

    from argon2.low_level import Type, hash_secret_raw

    _, _, _, costs, salt = params.split("$")
    cost = dict(part.split("=") for part in costs.split(","))
    return hash_secret_raw(
        password.encode("utf-8"),
        base64.b64decode(salt + "=" * (-len(salt) % 4)),
        time_cost=int(cost["t"]), memory_cost=int(cost["m"]), parallelism=int(cost["p"]),
        hash_len=hash_len, type=Type.ID,
    )  # fmt: skip


def sign_in(conn, name: str, password: str, minutes: int) -> str | None:
    """Open a session by proving the password to the database: the web role
    gets the account's argon2id parameters and salt (a derived salt for an
    unknown name), computes the raw hash and the database compares it; the
    stored hash never leaves the database. Returns the session token, None
    for a wrong name or password, or ``"locked"`` after too many failures."""
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)
    params, hash_len = cur.execute("select * from review.sign_in_params(%s)", (name,)).fetchone()
    key = _raw_key(params, hash_len, password)
    return cur.execute("select review.sign_in(%s, %s, %s)", (name, key, minutes)).fetchone()[0]
