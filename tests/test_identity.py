"""Record identity per source, the replacement guard and the replacement log."""

from __future__ import annotations

import pytest

from audit.errors import BatchRejected
from audit.generate import generate
from audit.ingest import LoadSettings, ingest
from tests.batches import base_tables, make_batch

pytestmark = pytest.mark.db

NO_GX = LoadSettings()


def current(conn, table: str, key: str) -> list[tuple]:
    # Names come from the test itself, never from data.
    return conn.execute(
        f"select {key}, source, patient_id from core.{table} where is_current order by 1, 2"  # noqa: S608
    ).fetchall()


def test_two_sources_with_colliding_ids_are_kept_side_by_side(conn, tmp_path):
    north = base_tables(n_rx=2)
    south = base_tables(n_rx=2)
    for row in south["prescriptions"]:
        row["site_id"] = "south"
    ingest(conn, make_batch(tmp_path, "north-1", tables=north, source="north-ehr"), NO_GX)
    result = ingest(conn, make_batch(tmp_path, "south-1", tables=south, source="south-ehr"), NO_GX)
    rx = current(conn, "prescriptions", "rx_id")
    assert [(r[0], r[1]) for r in rx] == [
        ("rx1", "north-ehr"), ("rx1", "south-ehr"), ("rx2", "north-ehr"), ("rx2", "south-ehr")
    ]  # fmt: skip
    assert {r["file"]: r["replaced"] for r in result.replacements}["prescriptions.csv"] == 0
    # the patient is one identity: a second row beside the first, nothing replaced
    patients = [(r[0], r[1]) for r in current(conn, "patients", "patient_id")]
    assert [p for p in patients if p[0] == "p1"] == [("p1", "north-ehr"), ("p1", "south-ehr")]


def test_a_correction_replaces_only_a_record_of_its_own_source(conn, tmp_path):
    ingest(conn, make_batch(tmp_path, "north-1", tables=base_tables(n_rx=2), source="north"), NO_GX)
    ingest(conn, make_batch(tmp_path, "south-1", tables=base_tables(n_rx=2), source="south"), NO_GX)
    fix = base_tables(n_rx=1)
    fix["prescriptions"][0]["days_supply"] = 90
    result = ingest(conn, make_batch(tmp_path, "north-2", tables=fix, source="north"), NO_GX)
    supplies = conn.execute(
        "select source, days_supply from core.prescriptions"
        " where is_current and rx_id = 'rx1' order by source"
    ).fetchall()
    assert supplies == [("north", 90), ("south", 30)]
    log = {r["file"]: r for r in result.replacements}
    assert log["prescriptions.csv"] == {
        "file": "prescriptions.csv", "added": 0, "replaced": 1, "from": {"north-1": 1}
    }  # fmt: skip
    stored = conn.execute(
        "select replacements from audit.batches where batch_id = 'north-2'"
    ).fetchone()[0]
    assert stored == result.replacements


def test_a_second_cohort_under_the_same_ids_is_rejected_and_changes_nothing(conn, tmp_path):
    generate(120, 42, tmp_path / "demo")
    generate(120, 1, tmp_path / "other")
    ingest(conn, tmp_path / "demo", NO_GX)
    before = conn.execute(
        "select count(*) filter (where is_current), count(*) from core.prescriptions"
    ).fetchone()
    with pytest.raises(BatchRejected) as err:
        ingest(conn, tmp_path / "other", NO_GX)
    message = str(err.value)
    assert "batch synthetic-s1-n120 rejected: patients.csv" in message or (
        "rejected: prescriptions.csv" in message
    )
    assert "synthetic-s42-n120" in message  # the batch whose records it would replace
    assert "--allow-replace" in message
    after = conn.execute(
        "select count(*) filter (where is_current), count(*) from core.prescriptions"
    ).fetchone()
    assert after == before
    status = conn.execute(
        "select status, reason from audit.batches where batch_id = 'synthetic-s1-n120'"
    ).fetchone()
    assert status[0] == "rejected" and "would replace" in status[1] or "would change" in status[1]


def test_allow_replace_lets_a_mass_correction_through_and_logs_it(conn, tmp_path):
    generate(120, 42, tmp_path / "demo")
    generate(120, 1, tmp_path / "other")
    ingest(conn, tmp_path / "demo", NO_GX)
    held = conn.execute("select count(*) from core.prescriptions where is_current").fetchone()[0]
    result = ingest(conn, tmp_path / "other", LoadSettings(allow_replace=True))
    log = {r["file"]: r for r in result.replacements}
    rx = log["prescriptions.csv"]
    superseded = conn.execute(
        "select count(*) from core.prescriptions where superseded_by = %s", (result.batch_no,)
    ).fetchone()[0]
    assert rx["replaced"] == superseded > 0
    assert rx["from"] == {"synthetic-s42-n120": superseded}
    new_rows = conn.execute(
        "select count(*) from core.prescriptions where batch_no = %s", (result.batch_no,)
    ).fetchone()[0]
    assert rx["added"] + rx["replaced"] == new_rows
    now = conn.execute("select count(*) from core.prescriptions where is_current").fetchone()[0]
    assert now == held - superseded + new_rows


def test_a_changed_birth_year_is_refused_without_allow_replace(conn, tmp_path):
    ingest(conn, make_batch(tmp_path, "b-1", tables=base_tables()), NO_GX)
    again = base_tables()
    again["patients"][0]["birth_year"] = 1950
    with pytest.raises(BatchRejected) as err:
        ingest(conn, make_batch(tmp_path, "b-2", tables=again), NO_GX)
    assert "would change the birth year or sex of 1 patient(s)" in str(err.value)
    assert "patients.csv" in str(err.value)
    ok = ingest(
        conn, make_batch(tmp_path, "b-3", tables=again),
        LoadSettings(allow_replace=True),
    )  # fmt: skip
    assert ok.status == "loaded"


def test_a_few_corrections_of_a_small_extract_pass_the_guard(conn, tmp_path):
    ingest(conn, make_batch(tmp_path, "b-1", tables=base_tables(n_rx=3)), NO_GX)
    fix = base_tables(n_rx=3)  # every record again (100%), but only a few
    assert ingest(conn, make_batch(tmp_path, "b-2", tables=fix), NO_GX).status == "loaded"


# -- hardening round 3: replacements that add up, demographics, source names ----


def _fills(n: int, days: str = "30") -> dict:
    tables = base_tables(n_rx=n)
    for r in tables["prescriptions"]:
        r["days_supply"] = days
    return tables


def test_small_batches_that_add_up_to_a_mass_replacement_are_refused(conn, tmp_path):
    ingest(conn, make_batch(tmp_path, "b-0", tables=_fills(300), source="north"), NO_GX)
    refused = None
    for i in range(1, 10):  # each batch replaces 18 of the 300 fills (6%)
        fix = _fills(300, "60")
        fix = {"prescriptions": fix["prescriptions"][(i - 1) * 18 : i * 18]}
        try:
            ingest(conn, make_batch(tmp_path, f"b-{i}", tables=fix, source="north",
                                    created_at=f"2026-01-0{i}T03:00:00Z"), NO_GX)  # fmt: skip
        except BatchRejected as exc:
            refused = (i, str(exc))
            break
    assert refused is not None and refused[0] == 2, refused
    assert "with the 18 this source's batches of the last 30 days replaced, 12.0%" in refused[1]
    replaced = conn.execute(
        "select count(*) from core.prescriptions where not is_current"
    ).fetchone()[0]
    assert replaced == 18  # the first correction only
    # a deliberate correction still goes through, and is left out of the window
    fix = {"prescriptions": _fills(300, "60")["prescriptions"][18:36]}
    ingest(conn, make_batch(tmp_path, "b-ok", tables=fix, source="north"),
           LoadSettings(allow_replace=True))  # fmt: skip


def test_a_90_plus_patient_re_sent_younger_is_refused(conn, tmp_path):
    tables = base_tables()
    tables["patients"][0]["birth_year"] = 1930  # 95 at 2025: stored as 90+
    ingest(conn, make_batch(tmp_path, "b-1", tables=tables, source="north"), NO_GX)
    again = {"patients": [dict(tables["patients"][0], birth_year=1980)]}
    with pytest.raises(BatchRejected, match="would change the birth year or sex of 1 patient"):
        ingest(conn, make_batch(tmp_path, "b-2", tables=again, source="north"), NO_GX)
    same = {"patients": [dict(tables["patients"][0], birth_year=1931)]}  # still 90+
    assert ingest(conn, make_batch(tmp_path, "b-3", tables=same, source="north"), NO_GX).status == (
        "loaded"
    )


def test_another_source_may_not_give_a_patient_another_birth_year_or_sex(conn, tmp_path):
    ingest(conn, make_batch(tmp_path, "n-1", tables=base_tables(), source="north"), NO_GX)
    other = {"patients": [{"patient_id": "p1", "birth_year": 1950, "sex": "M", "site_id": "x"}]}
    with pytest.raises(BatchRejected, match="birth year or sex of 1 patient"):
        ingest(conn, make_batch(tmp_path, "s-1", tables=other, source="south"), NO_GX)
    agrees = {"patients": [{"patient_id": "p1", "birth_year": 1980, "sex": "F", "site_id": "x"}]}
    assert ingest(conn, make_batch(tmp_path, "s-2", tables=agrees, source="south"),
                  NO_GX).status == "loaded"  # fmt: skip


@pytest.mark.parametrize("spelling", ["north ", " north", "North", "NORTH", "no\u00a0rth"])
def test_a_source_name_is_one_name(conn, tmp_path, spelling):
    ingest(conn, make_batch(tmp_path, "b-1", tables=base_tables(), source="north"), NO_GX)
    fix = {"prescriptions": _fills(1, "60")["prescriptions"]}
    path = make_batch(tmp_path, "b-2", tables=fix, source=spelling)
    if spelling.strip() == "north":  # spaces around it are not part of a name
        assert ingest(conn, path, NO_GX).status == "loaded"
        assert conn.execute(
            "select source, days_supply from core.prescriptions where is_current"
        ).fetchall() == [("north", 60)]
    elif spelling.lower() == "north":
        with pytest.raises(BatchRejected, match="differs only by case from the loaded source"):
            ingest(conn, path, NO_GX)
    else:  # a no-break space inside is a space: another name, never a crash
        assert ingest(conn, path, NO_GX).status == "loaded"
        assert conn.execute("select count(distinct source) from core.prescriptions").fetchone() == (
            2,
        )
