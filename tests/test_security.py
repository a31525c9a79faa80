"""Least-privilege roles, secrets kept out of every output."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from audit import db
from audit.generate import generate

pytestmark = pytest.mark.db

_n = itertools.count()


@pytest.fixture
def login(db_url):
    """Create login users in a group role; drop them afterwards."""
    made = []
    admin = psycopg.connect(db.to_libpq(db_url), autocommit=True)

    def make(group: str, password: str = "pw-not-checked-by-trust") -> str:
        name = f"rxaudit_test_{os.getpid()}_{next(_n)}"
        admin.execute(
            sql.SQL("create role {} login password {} in role {}").format(
                sql.Identifier(name), sql.Literal(password), sql.Identifier(group)
            )
        )
        made.append(name)
        return psycopg.conninfo.make_conninfo(db.to_libpq(db_url), user=name, password=password)

    yield make
    for name in made:
        admin.execute(sql.SQL("drop owned by {} cascade").format(sql.Identifier(name)))
        admin.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))
    admin.close()


def _run_as(url: str, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "audit", "run", str(tmp_path / "cohort"), "--out",
         str(tmp_path / "out"), *extra],
        env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _refused(conn, statement: str) -> bool:
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


@pytest.mark.slow
def test_roles_loader_reader_shared(login, tmp_path):
    generate(200, 6, tmp_path / "cohort")
    loader = login("rxaudit_loader")
    proc = _run_as(loader, tmp_path, "--shared")
    assert proc.returncode == 0, proc.stderr

    with psycopg.connect(login("rxaudit_reader"), autocommit=True) as reader:
        assert reader.execute("select count(*) from report.cases").fetchone()[0] > 0
        assert reader.execute("select count(*) from report.pathway").fetchone()[0] > 0
        for stmt in (
            "insert into report.reviews (case_id, status, note, reviewer)"
            " values ('x', 'confirmed', 'n', 'r')",
            "delete from report.reviews",
            "update report.reviews set note = 'changed'",
            "select * from audit.cases limit 1",
            "select * from core.patients limit 1",
            "select * from audit.delivered_files limit 1",
            "create table report.x (a int)",
        ):
            assert _refused(reader, stmt), stmt

    with psycopg.connect(login("rxaudit_shared"), autocommit=True) as shared:
        assert shared.execute("select count(*) from report_shared.measures").fetchone()[0] > 0
        for stmt in ("select * from report.cases limit 1", "select * from report.pathway limit 1",
                     "select * from audit.cases limit 1", "select * from core.patients limit 1",
                     "select * from audit.measures limit 1"):  # fmt: skip
            assert _refused(shared, stmt), stmt
        # Nowhere the shared role can read holds a patient-level column.
        readable = shared.execute(
            "select c.table_schema, c.table_name, c.column_name from information_schema.columns c"
            " join pg_class k on k.relname = c.table_name"
            " join pg_namespace n on n.oid = k.relnamespace and n.nspname = c.table_schema"
            " where c.table_schema not in ('pg_catalog', 'information_schema')"
            "   and has_table_privilege(k.oid, 'select')"
        ).fetchall()
        assert readable and {s for s, _, _ in readable} == {"report_shared"}
        columns = {c for _, _, c in readable}
        assert not columns & {"patient_id", "prescriber_id", "case_id", "summary", "evidence"}
        rows = shared.execute(
            "select min(numerator), min(denominator) from report_shared.measures"
            " where numerator between 1 and 10 or denominator between 1 and 10"
        ).fetchone()
        assert rows == (None, None)


@pytest.mark.slow
def test_password_never_reaches_logs_reports_or_run_json(login, tmp_path):
    password = "Sup3r-S3cret-Pa55word-9431"
    generate(120, 7, tmp_path / "cohort")
    url = login("rxaudit_loader", password)
    as_url = "postgresql+psycopg://{user}:{pw}@{host}:{port}/{db}".format(
        user=psycopg.conninfo.conninfo_to_dict(url)["user"], pw=password,
        host="127.0.0.1", port=5432, db=psycopg.conninfo.conninfo_to_dict(url)["dbname"],
    )  # fmt: skip
    info = psycopg.conninfo.conninfo_to_dict(url)
    use = as_url if info.get("host", "").startswith(("127.", "localhost")) else url
    proc = _run_as(use, tmp_path, "--shared", "--debug")
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = [proc.stdout, proc.stderr]
    outputs += [p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    with psycopg.connect(db.to_libpq(url)) as conn:
        outputs.append(str(conn.execute("select summary from audit.runs").fetchall()))
    for text in outputs:
        assert password not in text
        assert use not in text


def test_unreachable_database_message_has_no_password(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "audit", "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": "postgresql://u:TopSecret99@127.0.0.1:1/x"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 4
    assert "TopSecret99" not in proc.stderr + proc.stdout


def test_the_pipeline_role_cannot_erase_alter_or_back_date_a_review(login, conn, tmp_path):
    """Reviews belong to rxaudit_reviews, which the pipeline does not hold:
    the loader writes one only through review.add_review, which stamps it."""
    from tests.rulekit import World

    w = World()
    w.patient("p", ptsd_on="2025-01-01").fill("alprazolam", "2025-02-01", 30)
    w.load(conn, tmp_path)
    from tests.rulekit import evaluate

    [case] = [c["case_id"] for c in evaluate(conn) if c["rule_id"] == "BZD-PTSD"]
    loader_url = login("rxaudit_loader")
    with psycopg.connect(loader_url, autocommit=True) as loader:
        user = loader.execute("select session_user").fetchone()[0]
        review_id = loader.execute(
            "select review.add_review(%s, 'confirmed', 'seen', 'qi-lead')", (case,)
        ).fetchone()[0]
        for stmt in (
            "alter table review.reviews disable trigger all",
            "alter table review.reviews drop column note",
            "drop table review.reviews",
            "drop schema review cascade",
            "delete from review.reviews",
            "update review.reviews set reviewed_at = '2020-01-01'",
            "truncate audit.cases cascade",
            "insert into review.reviews (case_id, status, note, reviewer, reviewed_at)"
            " values ('any-case', 'confirmed', 'n', 'someone else', '2020-01-01')",
            "create or replace function review.refuse_change() returns trigger"
            " language plpgsql as $$ begin return old; end $$",
            "create or replace function review.add_review(a text, b text, c text, d text)"
            " returns bigint language sql as $$ select 1::bigint $$",
            "grant rxaudit_reviews to current_user",
        ):
            assert _refused(loader, stmt), stmt
    row = conn.execute(
        "select review_id, reviewer, recorded_by, reviewed_at > now() - interval '1 hour'"
        " from review.reviews"
    ).fetchall()
    assert row == [(review_id, "qi-lead", user, True)]
    members = conn.execute(
        "select count(*) from pg_auth_members m join pg_roles r on r.oid = m.roleid"
        " where r.rolname = 'rxaudit_reviews'"
    ).fetchone()[0]
    assert members == 0


def test_the_shared_role_reads_no_row_count_through_the_catalogue(login, conn, tmp_path):
    from tests.rulekit import World

    w = World()
    w.patient("p", ptsd_on="2025-01-01").fill("alprazolam", "2025-02-01", 30)
    w.load(conn, tmp_path)
    conn.execute("analyze core.patients")
    conn.commit()
    with psycopg.connect(login("rxaudit_shared"), autocommit=True) as shared:
        oid = shared.execute(
            "select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'core' and c.relname = 'patients'"
        ).fetchone()[0]
        for stmt in (
            "select n_live_tup from pg_stat_user_tables",
            "select n_tup_ins from pg_stat_all_tables",
            "select heap_blks_read from pg_statio_user_tables",
            f"select pg_stat_get_live_tuples({oid})",
            f"select pg_stat_get_tuples_inserted({oid})",
            f"select pg_relation_size({oid})",
            f"select pg_total_relation_size({oid})",
            "select reltuples from pg_class where relname = 'patients'",
            "select relpages from pg_class where relname = 'patients'",
        ):
            assert _refused(shared, stmt), stmt
        # what tools need to list what it may read is still there
        names = shared.execute(
            "select table_name from information_schema.tables"
            " where table_schema = 'report_shared' order by 1"
        ).fetchall()
        assert names
        assert shared.execute("select count(*) from report_shared.measures").fetchone()[0] >= 0
    with psycopg.connect(login("rxaudit_loader"), autocommit=True) as loader:
        assert loader.execute(
            "select reltuples >= 0 from pg_class where oid = %s", (oid,)
        ).fetchone() == (True,)
