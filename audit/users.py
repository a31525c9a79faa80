"""Workspace accounts: `rxaudit users add|disable|set-sites`.

Passwords are hashed here with argon2id (memory-hard) and only the hash is
stored, in ``review.users``, through the SECURITY DEFINER functions of the
schema ``review`` (migration 0017). A password is read from standard input,
never taken as an argument (it would show in the process list and the
shell's history).
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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


def add(name: str, role: str, sites: list[str], password: str) -> None:
    """Create the account, or replace its role, sites and password."""
    _check(name, sites)
    if role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}")
    if role != "auditor" and not sites:
        raise UsageError("a reviewer or lead needs at least one --site")
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password must have at least {MIN_PASSWORD} characters")
    hashed = _hasher.hash(password)
    with db.read_session() as conn, conn.transaction():
        conn.execute("select review.set_user(%s, %s, %s, %s)", (name, role, sites, hashed))


def disable(name: str) -> None:
    """Disable the account and end its sessions."""
    with db.read_session() as conn, conn.transaction():
        if not conn.execute("select review.disable_user(%s)", (name,)).fetchone()[0]:
            raise UsageError(f"no user {name}")


def set_sites(name: str, sites: list[str]) -> None:
    _check(name, sites)
    with db.read_session() as conn, conn.transaction():
        if not conn.execute("select review.set_user_sites(%s, %s)", (name, sites)).fetchone()[0]:
            raise UsageError(f"no user {name}")


def verify(conn, name: str, password: str) -> bool:
    """Whether ``password`` is the enabled account's (for the sign-in form)."""
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)
    row = cur.execute("select review.password_hash_of(%s)", (name,)).fetchone()
    if not row or row[0] is None:
        _hasher.hash(password)  # the same work whether or not the user exists
        return False
    try:
        return _hasher.verify(row[0], password)
    except (VerificationError, InvalidHashError):
        return False
