"""Findings of an attack on the product, each at its cause: time zones in
created_at, policy files, terminal output, Safe Harbor as as_of moves."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from audit import orchestrate, policy
from audit.cases import cell, print_table
from audit.cli import main
from audit.errors import BatchRejected
from audit.ingest import LoadSettings, ingest
from audit.manifest import parse_manifest
from audit.policy import PolicyError
from tests.batches import base_tables, make_batch


def _manifest(created_at: str) -> bytes:
    return json.dumps({
        "batch_id": "b", "schema_version": "1.1", "as_of": "2025-12-31",
        "created_at": created_at,
        "files": {name: {"sha256": "0" * 64, "rows": 0} for name in
                  ("patients.csv", "diagnoses.csv", "prescriptions.csv", "therapy_sessions.csv")},
    }).encode()  # fmt: skip


@pytest.mark.unit
def test_created_at_without_a_time_zone_is_refused():
    with pytest.raises(BatchRejected) as err:
        parse_manifest(_manifest("2026-11-01T02:00:00"))
    assert "'created_at' must give its time zone" in str(err.value)
    assert parse_manifest(_manifest("2026-11-01T02:00:00.123456+01:00")).created_at is not None


@pytest.mark.unit
def test_inbox_orders_by_the_moment_not_the_text(tmp_path):
    # 23:00 at UTC-5 is 04:00Z the next day: after 03:00Z, though it sorts first as text
    for name, created in (("a-east", "2026-10-31T23:00:00-05:00"),
                          ("b-utc", "2026-11-01T03:00:00Z"),
                          ("c-frac", "2026-11-01T03:00:00.5Z")):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(
            json.dumps({"created_at": created, "batch_id": name})
        )
    complete, _ = orchestrate.pending_batches(tmp_path)
    assert [p.name for p in complete] == ["b-utc", "c-frac", "a-east"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, message",
    [
        ("version = \"=cmd|' /C calc'!A0\"\n", "version: 1-40 letters"),
        ('version = "x"\ntitle = "a\\u001b[31mred"\n', "title: a short line of text"),
        ('version = "x"\nfoo = ' + "[" * 2000 + "]" * 2000 + "\n", "nested too deeply"),
    ],
)
def test_policy_files_are_constrained(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        policy.load(path)
    assert message in str(err.value)


@pytest.mark.unit
def test_a_policy_that_is_not_a_small_file_is_refused(tmp_path):
    with pytest.raises(PolicyError) as err:
        policy.load("/dev/zero")
    assert "not a regular file" in str(err.value)
    big = tmp_path / "big.toml"
    big.write_text('version = "x"\n' + "# padding\n" * 40_000)
    with pytest.raises(PolicyError) as err:
        policy.load(big)
    assert "larger than" in str(err.value)


@pytest.mark.unit
def test_cases_limit_must_be_positive(capsys):
    assert main(["--quiet", "cases", "--limit", "-1"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


@pytest.mark.unit
@given(st.text(max_size=40))
@example("\u2028")  # LINE SEPARATOR and PARAGRAPH SEPARATOR split lines too
@example("a\u2029b")
@example("\x85")
def test_terminal_cells_hold_no_control_character_and_no_formula(value):
    out = cell(value)
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in out)
    assert out[:1] not in ("=", "+", "-", "@")
    buf = io.StringIO()
    print_table([(value, "x")], buf, ("a", "b"))
    assert buf.getvalue().count("\n") == 2 and buf.getvalue().splitlines()[1].count("\t") == 1


@pytest.mark.db
def test_age_90_plus_is_re_applied_when_as_of_moves_to_a_later_year(conn, tmp_path):
    tables = base_tables()
    tables["patients"][0]["birth_year"] = 1936  # 89 at 2025-12-31, 90 at 2026-06-30
    ingest(conn, make_batch(tmp_path, "b-1", tables=tables), LoadSettings())
    assert conn.execute(
        "select birth_year, age_90_plus from core.patients where patient_id = 'p1'"
    ).fetchone() == (1936, False)
    later = {"patients": [], "diagnoses": [], "prescriptions": [], "therapy_sessions": []}
    ingest(conn, make_batch(tmp_path, "b-2", tables=later, as_of="2026-06-30",
                            created_at="2026-07-01T02:00:00Z"),
           LoadSettings())  # fmt: skip
    assert conn.execute(
        "select birth_year, age_90_plus from core.patients where patient_id = 'p1'"
    ).fetchone() == (None, True)
    touched = conn.execute(
        "select count(*) from audit.batch_patients as p join audit.batches as b"
        " using (batch_no) where b.batch_id = 'b-2' and p.patient_id = 'p1'"
    ).fetchone()[0]
    assert touched == 1


@pytest.mark.unit
def test_a_future_as_of_is_refused():
    doc = json.loads(_manifest("2026-01-01T02:00:00Z"))
    doc["as_of"] = "2099-12-31"
    with pytest.raises(BatchRejected) as err:
        parse_manifest(json.dumps(doc).encode())
    assert "'as_of' is in the future" in str(err.value)
    doc["as_of"] = "2026-01-03"  # two days after the batch was made
    with pytest.raises(BatchRejected) as err:
        parse_manifest(json.dumps(doc).encode())
    assert "'as_of' is after 'created_at'" in str(err.value)
    doc["as_of"] = "2026-01-02"  # a day of tolerance (time zones)
    assert parse_manifest(json.dumps(doc).encode()).as_of.isoformat() == "2026-01-02"


@pytest.mark.unit
def test_history_from_is_bounded_as_record_dates_are():
    doc = json.loads(_manifest("2026-11-01T02:00:00Z"))
    for bad in ("0001-01-01", "1899-12-31"):
        with pytest.raises(BatchRejected) as err:
            parse_manifest(json.dumps({**doc, "history_from": bad}).encode())
        assert "'history_from' must lie in the years 1900 to 2099" in str(err.value)
    assert parse_manifest(json.dumps({**doc, "history_from": "1900-01-01"}).encode())


@pytest.mark.db
def test_an_empty_batch_moves_no_history_start(conn, tmp_path):
    """A batch of no rows with an early history_from does not move the history
    start (it would re-grade every patient's history tests)."""
    from audit import rules

    ingest(conn, make_batch(tmp_path, "b-001", history_from="2015-01-01"), LoadSettings())
    empty = {t: [] for t in ("patients", "diagnoses", "prescriptions", "therapy_sessions")}
    ingest(conn, make_batch(tmp_path, "b-002", tables=empty, history_from="1900-01-01"),
           LoadSettings())  # fmt: skip
    assert str(rules.history_start(conn, dt.date(2025, 12, 31))) == "2015-01-01"


@pytest.mark.db
def test_age_90_plus_is_re_applied_by_a_later_batch_without_patients(conn, tmp_path):
    tables = base_tables()
    tables["patients"][0]["birth_year"] = 1936  # 89 at 2025, 90 at 2026
    ingest(conn, make_batch(tmp_path, "b-1", tables=tables), LoadSettings())
    later = {"prescriptions": base_tables(n_rx=2)["prescriptions"][1:]}
    later["prescriptions"][0]["filled_on"] = "2026-06-10"
    ingest(conn, make_batch(tmp_path, "b-2", tables=later, as_of="2026-06-30",
                            created_at="2026-07-01T02:00:00Z"), LoadSettings())  # fmt: skip
    assert conn.execute(
        "select birth_year, age_90_plus from core.patients where patient_id = 'p1'"
    ).fetchone() == (None, True)


@pytest.mark.db
def test_validation_and_quarantine_records_keep_no_offending_value(conn, tmp_path):
    """A bad value may be an identifier the guard did not recognise: results,
    quarantine records and the ledger keep reason, file, line and column only."""
    tables = base_tables(n_rx=5)
    rx = tables["prescriptions"]
    rx[0]["strength_mg"] = "Infinity"
    rx[1]["filled_on"] = "2026-02-30"
    rx[2]["filled_on"] = "9999-12-31"
    rx[3]["days_supply"] = "1e400"
    tables["diagnoses"][0]["diagnosed_on"] = "2025-13-01"
    ingest(conn, make_batch(tmp_path, tables=tables), LoadSettings(max_quarantine_fraction=1.0))
    dumps = [
        conn.execute("select coalesce(string_agg(t::text, ' '), '') from audit.validation_results t")
        .fetchone()[0],
        conn.execute("select coalesce(string_agg(t::text, ' '), '') from audit.quarantine t")
        .fetchone()[0],
        conn.execute("select coalesce(string_agg(t::text, ' '), '') from audit.batches t")
        .fetchone()[0],
    ]  # fmt: skip
    assert conn.execute("select count(*) from audit.quarantine").fetchone()[0] == 5
    for value in ("Infinity", "2026-02-30", "9999-12-31", "1e400", "2025-13-01"):
        for dump in dumps:
            assert value not in dump


@pytest.mark.db
def test_the_next_run_removes_what_a_killed_run_left_in_out(db_url, tmp_path, capsys):
    import os

    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".20260101T000000Z-deadbeef.99999999.0123abcd.tmp"  # no such process
    dead.mkdir()
    (dead / "flagged_cases.csv").write_text("half written")
    (out / ".latest-99999999").symlink_to("nowhere")
    live = out / f".20260101T000000Z-cafe.{os.getppid()}.0123abcd.tmp"  # a live writer's
    live.mkdir()
    assert main(["--quiet", "run", str(make_batch(tmp_path)), "--out", str(out)]) == 0
    left = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert left == [live.name]


@pytest.mark.db
def test_a_database_lost_mid_load_is_exit_4_naming_the_database(db_url, tmp_path, monkeypatch,
                                                                capsys):  # fmt: skip
    from audit import db
    from audit.ingest import compile

    def lost(conn, *args, **kwargs):  # the server ends the session during validation
        conn.execute("select pg_terminate_backend(pg_backend_pid())")

    monkeypatch.setattr(compile, "validate_file", lost)
    code = main(["--quiet", "run", str(make_batch(tmp_path)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 4, err
    assert f"lost the connection to the database at {db.describe(db_url)}" in err
    assert "password" not in err and "internal error" not in err
