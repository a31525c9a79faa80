"""The workspace's access model in PostgreSQL: the web role reads only the
`web` views, sees only its signed-in user's sites (none without a session),
and writes reviews, assignments and the access log only through functions
that stamp the user. SQL-level: a forgotten filter, or a hand-written query,
shows no other site's patient."""

from __future__ import annotations

import threading

import psycopg
import pytest
from argon2 import PasswordHasher

from audit import db, users
from tests.rulekit import World, evaluate
from tests.test_security import _refused, login  # noqa: F401 - the fixture

pytestmark = pytest.mark.db


@pytest.fixture
def world(conn, tmp_path):
    w = World()
    w.patient("a1", ptsd_on="2025-01-01", site="site-a").fill("alprazolam", "2025-02-01", 30)
    w.patient("a2", ptsd_on="2025-01-01", site="site-a").fill("lorazepam", "2025-03-01", 30)
    w.patient("b1", ptsd_on="2025-01-01", site="site-b").fill("alprazolam", "2025-02-01", 30)
    w.load(conn, tmp_path)
    cases = {c["patient_id"]: c["case_id"] for c in evaluate(conn) if c["rule_id"] == "BZD-PTSD"}
    for name, role, sites in (("alice", "reviewer", ["site-a"]), ("bob", "reviewer", ["site-b"]),
                              ("lena", "lead", ["site-a"]), ("audrey", "auditor", [])):  # fmt: skip
        conn.execute("select review.set_user(%s, %s, %s, %s)",
                     (name, role, sites, _HASHES[name]))  # fmt: skip
    conn.commit()
    return cases


PASSWORD = "a long test password"
_HASHES = {n: PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
           for n in ("alice", "bob", "lena", "audrey")}  # fmt: skip


def _signed_in(web, user: str, password: str = PASSWORD) -> str:
    """Sign in as the web role does: proving the password to the database."""
    token = users.sign_in(web, user, password, 30)
    assert token and token != "locked", token
    web.execute("select set_config('rxaudit.session', %s, false)", (token,))
    return token


def _sites(web) -> list[str]:
    return sorted({r[0] for r in web.execute("select site_id from web.cases").fetchall()})


def test_without_a_session_the_web_role_sees_no_patient(login, world):  # noqa: F811
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        for view in ("cases", "case_index", "case_sources", "runs", "reviews", "pathway",
                     "measures", "access_log", "me"):  # fmt: skip
            assert web.execute(f"select count(*) from web.{view}").fetchone() == (0,), view  # noqa: S608
        web.execute("select set_config('rxaudit.session', 'a-guessed-token', false)")
        assert web.execute("select count(*) from web.cases").fetchone() == (0,)


def test_a_reviewer_sees_only_their_sites_even_by_hand_written_queries(login, world):  # noqa: F811
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        _signed_in(web, "alice")
        assert _sites(web) == ["site-a"]
        assert web.execute(
            "select count(*) filter (where site_id = 'site-b'), count(*) from web.cases"
        ).fetchone() == (0, 2)
        assert web.execute(
            "select count(*) from web.pathway where home_site_id = 'site-b'"
        ).fetchone() == (0,)
        sources = web.execute("select distinct case_id from web.case_sources").fetchall()
        assert sources and world["b1"] not in {r[0] for r in sources}
        for stmt in (
            "select * from audit.cases",
            "select * from core.patients",
            "select * from audit.delivered_files",
            "select * from report.cases",
            "select * from review.reviews",
            "select * from review.users",
            "select * from review.sessions",
            "update review.reviews set note = 'x'",
            "delete from review.access_log",
            "insert into review.access_log (user_name, what) values ('x', 'y')",
            "select review.add_review('c', 'confirmed', 'n', 'someone')",
            "select review.set_user('eve', 'auditor', '{}', 'h')",
        ):
            assert _refused(web, stmt), stmt
        # a leaky function of the web role's own sees no row the view drops
        web.execute(
            "create function pg_temp.peek(t text) returns boolean language plpgsql"
            " cost 0.0000001 as $$ begin raise notice 'saw %', t; return true; end $$"
        )
        seen = []
        web.add_notice_handler(lambda d: seen.append(d.message_primary))
        web.execute("select * from web.cases where pg_temp.peek(site_id)").fetchall()
        assert seen and all(m == "saw site-a" for m in seen)


def test_an_auditor_sees_every_site_and_the_access_log(login, world):  # noqa: F811
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        _signed_in(web, "alice")
        web.execute("select review.log_access('case page', %s, 1)", (world["a1"],))
        assert web.execute("select count(*) from web.access_log").fetchone() == (0,)
        _signed_in(web, "audrey")
        assert _sites(web) == ["site-a", "site-b"]
        rows = web.execute("select user_name, what, object_id, rows from web.access_log"
                           " where what <> 'sign-in'").fetchall()  # fmt: skip
        assert rows == [("alice", "case page", world["a1"], 1)]
        signed = web.execute("select user_name from web.access_log where what = 'sign-in'")
        assert sorted(r[0] for r in signed.fetchall()) == ["alice", "audrey"]
        # the web role reads no log but its own view of it, and changes none
        assert _refused(web, "select * from audit.access_log")
    # the access log is the table audit.access_log for the operator: read, never changed
    with psycopg.connect(login("rxaudit_loader"), autocommit=True) as loader:
        got = loader.execute("select user_name, what, object_id, rows from audit.access_log"
                             " where what <> 'sign-in'")  # fmt: skip
        assert got.fetchall() == [("alice", "case page", world["a1"], 1)]
        for statement in ("delete from audit.access_log", "update audit.access_log set rows = 0",
                          "truncate review.access_log", "drop table review.access_log",
                          "drop view audit.access_log",
                          "create or replace view audit.access_log as select log_id, user_name,"
                          " at, what, object_id, rows from review.access_log"
                          " where user_name <> 'alice'",
                          "alter view audit.access_log rename to old_log",
                          "alter schema audit rename to audit_old"):  # fmt: skip
            try:
                with loader.transaction():
                    loader.execute(statement)
            except psycopg.Error:
                continue
            raise AssertionError(f"the loader could: {statement}")
        assert loader.execute("select count(*) from audit.access_log").fetchone() == (3,)


def test_reviews_and_assignments_are_stamped_and_limited_to_the_users_sites(login, world):  # noqa: F811
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        _signed_in(web, "alice")
        web.execute("select review.web_review(%s, 'confirmed', 'seen it')", (world["a1"],))
        with pytest.raises(psycopg.errors.NoDataFound):
            web.execute("select review.web_review(%s, 'confirmed', 'not mine')", (world["b1"],))
        # a reviewer's assignment is refused and recorded (no assignment)
        assert web.execute("select review.web_assign(%s, 'alice')", (world["a2"],)).fetchone() == (
            None,
        )
        rows = web.execute("select case_id, status, reviewer from web.reviews").fetchall()
        assert rows == [(world["a1"], "confirmed", "alice")]
        _signed_in(web, "lena")
        web.execute("select review.web_assign(%s, 'alice')", (world["a2"],))
        with pytest.raises(psycopg.errors.NoDataFound):
            web.execute("select review.web_assign(%s, 'bob')", (world["a2"],))
        assert web.execute("select assignee, assigned_by from web.assignments").fetchall() == [
            ("alice", "lena")
        ]
        web.execute("select review.close_session()")
        assert web.execute("select count(*) from web.cases").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            web.execute("select review.web_review(%s, 'confirmed', 'after sign-out')",
                        (world["a1"],))  # fmt: skip


def test_a_disabled_user_loses_every_session(conn, login, world):  # noqa: F811
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        _signed_in(web, "bob")
        assert _sites(web) == ["site-b"]
        conn.execute("select review.disable_user('bob')")
        conn.commit()
        assert _sites(web) == []
        assert users.sign_in(web, "bob", PASSWORD, 30) is None


def test_users_from_the_command_line_with_a_hashed_password(db_url, conn, monkeypatch, capsys):
    import io

    from audit import users
    from audit.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main(["users", "add", "kim", "--role", "reviewer", "--site", "site-a",
                 "--password-stdin"]) == 0  # fmt: skip
    assert "user kim: reviewer of site-a" in capsys.readouterr().out
    stored = conn.execute("select role, sites, password_hash from review.users").fetchone()
    assert stored[:2] == ("reviewer", ["site-a"])
    assert stored[2].startswith("$argon2id$") and "correct horse" not in stored[2]
    assert users.sign_in(conn, "kim", "correct horse battery", 5)
    assert users.sign_in(conn, "kim", "wrong horse battery", 5) is None
    assert users.sign_in(conn, "nobody", "correct horse battery", 5) is None
    assert main(["users", "set-sites", "kim", "--site", "site-a", "--site", "site-b"]) == 0
    assert conn.execute("select sites from review.users").fetchone() == (["site-a", "site-b"],)
    assert main(["users", "disable", "kim"]) == 0
    assert users.sign_in(conn, "kim", "correct horse battery", 5) is None
    assert main(["users", "disable", "nobody"]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "lee", "--role", "lead", "--site", "x", "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough password\n"))
    assert main(["users", "add", "lee", "--role", "lead", "--password-stdin"]) == 2
    assert "needs at least one --site" in capsys.readouterr().err


def test_the_worklist_functions_keep_the_users_sites_whatever_the_filters(login, world):  # noqa: F811
    nulls = (None,) * 9
    page = ("select review.web_worklist(%s, %s, %s, %s, %s, %s::date, %s::date, %s, %s,"
            " %s, %s)")  # fmt: skip
    count = "select review.web_worklist_count(%s, %s, %s, %s, %s, %s::date, %s::date, %s, %s)"
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        # no session: nothing
        assert web.execute(page, (*nulls, 100, 0)).fetchall() == []
        assert web.execute(count, nulls).fetchone() == (0,)
        _signed_in(web, "alice")
        ids = [r[0] for r in web.execute(page, (*nulls, None, 0))]
        assert sorted(ids) == sorted([world["a1"], world["a2"]])
        assert web.execute(count, nulls).fetchone() == (2,)
        # asking for the other site by the filter gives nothing
        other = (None, "site-b", *(None,) * 7)
        assert web.execute(page, (*other, 100, 0)).fetchall() == []
        assert web.execute(count, other).fetchone() == (0,)
        # newest case date first, paged
        first = web.execute(page, (*nulls, 1, 0)).fetchone()[0]
        assert first == world["a2"]  # lorazepam from 2025-03-01
        assert [r[0] for r in web.execute(page, (*nulls, 1, 1))] == [world["a1"]]
        _signed_in(web, "audrey")
        assert web.execute(count, nulls).fetchone() == (3,)
        # the condition is the function's own text: a filter value is never SQL
        evil = ("x' or true --", *(None,) * 8)
        assert web.execute(count, evil).fetchone() == (0,)


def test_row_level_security_holds_even_for_a_view_without_a_site_filter(conn, login, world):  # noqa: F811
    # a careless view: no site filter of its own, owned like the workspace's views
    conn.execute("create view web.careless as select c.case_id, c.site_id, rx.rx_id"
                 " from audit.cases as c left join core.prescriptions as rx"
                 " on rx.patient_id = c.patient_id")  # fmt: skip
    conn.execute("alter view web.careless owner to rxaudit_web_views")
    conn.execute("grant select on web.careless to rxaudit_web")
    conn.commit()
    flags = dict(conn.execute(
        "select c.oid::regclass::text, c.relrowsecurity from pg_class as c"
        " where c.oid = any(array['audit.cases', 'audit.pathway', 'audit.case_evidence']"
        "  ::regclass[])"
    ).fetchall())  # fmt: skip
    assert set(flags.values()) == {True}, flags
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        assert web.execute("select count(*) from web.careless").fetchone() == (0,)
        _signed_in(web, "alice")
        rows = web.execute("select distinct site_id from web.careless").fetchall()
        assert rows == [("site-a",)]
        _signed_in(web, "bob")
        assert web.execute("select distinct site_id from web.careless").fetchall() == [("site-b",)]
        _signed_in(web, "audrey")
        assert web.execute("select count(distinct site_id) from web.careless").fetchone() == (2,)
    # the pipeline, owner of the tables, is not under the policies
    assert conn.execute("select count(distinct site_id) from audit.cases").fetchone() == (2,)


def test_the_web_role_opens_no_session_without_the_password(login, world):  # noqa: F811
    """Hardening 3, findings 1 and 2: the web role cannot open a session by
    name, cannot read a password hash, and a wrong password opens nothing;
    the access log's sign-in rows are written by the database."""
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        for stmt in ("select review.open_session('audrey', 1440)",
                     "select review.password_hash_of('audrey')",
                     "select password_hash from review.users"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                web.execute(stmt)
        params, _ = web.execute("select * from review.sign_in_params('audrey')").fetchone()
        assert params.startswith("$argon2id$") and params.count("$") == 4  # no hash part
        unknown, _ = web.execute("select * from review.sign_in_params('nobody')").fetchone()
        assert unknown.startswith("$argon2id$") and unknown != params
        assert users.sign_in(web, "audrey", "not the password", 30) is None
        assert web.execute("select count(*) from web.cases").fetchone() == (0,)
        _signed_in(web, "audrey")
        assert _sites(web) == ["site-a", "site-b"]


def test_parallel_sign_ins_cannot_race_past_the_limit(db_url, login, world):  # noqa: F811
    """Finding 3: 20 parallel wrong passwords for one name: at most 5 are
    tried, the rest refused; then even the right password waits."""
    url = login("rxaudit_web")
    results = []

    def attempt():
        with psycopg.connect(url, autocommit=True) as web:
            results.append(users.sign_in(web, "bob", "a wrong password!", 30))

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(None) == 5 and results.count("locked") == 15
    with psycopg.connect(url, autocommit=True) as web:
        assert users.sign_in(web, "bob", PASSWORD, 30) == "locked"


def test_a_password_change_ends_every_session(conn, login, world):  # noqa: F811
    """Finding 6: a reset (set_user with a new hash) ends the old sessions."""
    with psycopg.connect(login("rxaudit_web"), autocommit=True) as web:
        _signed_in(web, "alice")
        assert _sites(web) == ["site-a"]
        conn.execute("select review.set_user('alice', 'reviewer', '{site-a}', %s)",
                     (PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("new one!"),))  # fmt: skip
        conn.commit()
        assert _sites(web) == []
        _signed_in(web, "alice", "new one!")
        conn.execute(
            "select review.set_user('alice', 'reviewer', '{site-a,site-b}', "
            "(select password_hash from review.users where user_name = 'alice'))"
        )
        conn.commit()
        assert _sites(web) == ["site-a", "site-b"]  # the same password: the session stays


def test_user_administration_says_what_it_does(conn, world, monkeypatch, capsys):
    """Workspace round 2, finding 7: `add` refuses an existing name,
    `set-password` changes one and ends the sessions, an unknown site is
    warned with the known ones, `list` and `enable`."""
    import io

    from audit import users
    from audit.cli import main

    def stdin(text):
        monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n"))

    stdin("correct horse battery")
    assert main(["users", "add", "kim", "--role", "reviewer", "--site", "site-99",
                 "--password-stdin"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning: no loaded record names site site-99" in err and "site-a, site-b" in err
    stdin("another horse battery")
    assert main(["users", "add", "kim", "--role", "lead", "--site", "site-a",
                 "--password-stdin"]) == 2  # fmt: skip
    assert "user kim exists: `rxaudit users set-password kim" in capsys.readouterr().err
    assert users.sign_in(conn, "kim", "correct horse battery", 5)  # unchanged
    token = users.sign_in(conn, "kim", "correct horse battery", 5)
    stdin("a brand new password")
    assert main(["users", "set-password", "kim", "--password-stdin"]) == 0
    assert "every session ended" in capsys.readouterr().out
    live = conn.execute(
        "select count(*) from review.sessions where user_name = 'kim' and ended_at is null"
    ).fetchone()[0]
    assert token and live == 0
    assert users.sign_in(conn, "kim", "a brand new password", 5)
    assert main(["users", "disable", "kim"]) == 0
    assert main(["users", "enable", "kim"]) == 0
    assert users.sign_in(conn, "kim", "a brand new password", 5)
    capsys.readouterr()
    assert main(["users", "list"]) == 0
    listed = capsys.readouterr().out
    assert "kim\treviewer\tsite-99\tenabled" in listed and "$argon2" not in listed
    assert main(["users", "enable", "nobody"]) == 2


def test_the_workspace_refuses_a_login_row_security_does_not_bind(
    db_url,
    login,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """Workspace round 2, finding 4: no superuser, no pipeline role, unless
    --insecure-dev (said on every page); the embedded default makes and uses
    a login that is a member of rxaudit_web only."""
    import stat

    from starlette.testclient import TestClient

    from audit.errors import UsageError
    from audit.web import login as web_login
    from audit.web.app import create_app

    with pytest.raises(UsageError, match="a superuser: row-level security does not bind it"):
        web_login.check_narrow(db_url, insecure_dev=False)
    with pytest.raises(UsageError, match="the pipeline's role"):
        web_login.check_narrow(login("rxaudit_loader"), insecure_dev=False)
    assert web_login.check_narrow(db_url, insecure_dev=True) is True
    assert web_login.check_narrow(login("rxaudit_web"), insecure_dev=False) is False
    with TestClient(create_app(db_url, secret="s", insecure=True)) as c:
        assert "Insecure development mode" in c.get("/login").text
    with TestClient(create_app(login("rxaudit_web"), secret="s")) as c:
        assert "Insecure development mode" not in c.get("/login").text
    # the embedded default's own web login (here over the test server)
    monkeypatch.setenv("RXAUDIT_HOME", str(tmp_path / "home"))
    try:
        url = web_login.embedded_web_url()
        assert web_login.check_narrow(url, insecure_dev=False) is False
        assert stat.S_IMODE((tmp_path / "home" / "web-login").stat().st_mode) == 0o600
        assert web_login.embedded_web_url() == url  # made once, then reused
    finally:
        with psycopg.connect(db.to_libpq(db_url), autocommit=True) as admin:
            admin.execute("drop owned by rxaudit_web_local cascade")
            admin.execute("drop role if exists rxaudit_web_local")
