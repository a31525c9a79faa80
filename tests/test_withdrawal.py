"""An operator withdraws a loaded batch: its records leave core, the versions
it replaced are current again, a full audit follows, its files stay kept, and
the withdrawal is logged and attributed."""

from __future__ import annotations

import csv
import json

import psycopg
import pytest

from audit import db
from audit.cli import main
from tests.batches import make_batch
from tests.rulekit import World

pytestmark = pytest.mark.db


def _cohort(tmp_path):
    w = World()
    w.patient("bzd", ptsd_on="2025-01-01").fill("alprazolam", "2025-02-01", 30)
    w.patient("ok", ptsd_on="2025-01-01").fill("sertraline", "2025-02-01", 30, 50)
    first = make_batch(tmp_path, "b-1", tables=w.tables, as_of="2025-12-31")
    # the second batch corrects a fill (another drug) and moves as_of
    second_tables = {k: [dict(r) for r in v] for k, v in w.tables.items()}
    for row in second_tables["prescriptions"]:
        if row["patient_id"] == "ok":
            row["drug_name"] = "lorazepam 1 mg"
            row["drug_code"] = ""
    second = make_batch(
        tmp_path, "b-2", tables=second_tables, as_of="2026-01-20",
        created_at="2026-01-21T02:00:00Z",
    )  # fmt: skip
    return first, second


def _cases(out) -> list[tuple]:
    with (out / "latest" / "flagged_cases.csv").open() as fh:
        return sorted(
            (r["rule_id"], r["patient_id"], r["case_date"], r["status"]) for r in csv.DictReader(fh)
        )


def test_a_withdrawn_batch_leaves_core_and_a_full_audit_follows(db_url, tmp_path, capsys):
    first, second = _cohort(tmp_path)
    out = tmp_path / "out"
    assert main(["--quiet", "run", str(first), "--out", str(out)]) == 0
    before = _cases(out)
    assert main(["--quiet", "run", str(second), "--out", str(out), "--allow-replace"]) == 0
    assert _cases(out) != before
    capsys.readouterr()

    code = main(["--quiet", "batch", "withdraw", "b-2", "--reason", "wrong extract window",
                 "--by", "dba-kim", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "batch b-2 withdrawn by dba-kim:" in printed and "earlier version(s) current" in printed

    run = json.loads((out / "latest" / "run.json").read_text())
    assert run["evaluation"]["mode"] == "full"
    assert run["as_of"] == "2025-12-31"
    # the open cases are those of the first batch alone (the correction's
    # lorazepam case resolved, the first batch's findings open again)
    now = [c for c in _cases(out) if c[3] == "open"]
    assert now == [c for c in before if c[3] == "open"]

    with psycopg.connect(db.to_libpq(db_url)) as conn:
        # batch 1's versions are current again; batch 2's rows left core, and
        # its files as they arrived are kept
        assert conn.execute(
            "select batch_no, count(*) from core.prescriptions where is_current group by 1"
        ).fetchall() == [(1, 2)]
        assert conn.execute(
            "select count(*) from core.prescriptions where batch_no = 2"
        ).fetchone() == (0,)
        assert conn.execute(
            "select count(*) from audit.delivered_files where batch_no = 2"
            " and file_name = 'prescriptions.csv'"
        ).fetchone() == (1,)
        row = conn.execute(
            "select status, withdrawn_by, withdrawal_reason, withdrawn_db_user = current_user,"
            " withdrawn_at is not null from audit.batches where batch_id = 'b-2'"
        ).fetchone()
        assert row == ("withdrawn", "dba-kim", "wrong extract window", True, True)
        assert conn.execute(
            "select outcome, reason from audit.deliveries where batch_id = 'b-2'"
            " order by delivery_no desc limit 1"
        ).fetchone() == ("withdrawn", "withdrawn by dba-kim: wrong extract window")

    # the same batch delivered again is refused, and the withdrawal stays
    assert main(["--quiet", "run", str(second), "--out", str(out), "--allow-replace"]) == 3
    assert "was withdrawn by an operator" in capsys.readouterr().err
    assert main(["batch", "show", "b-2"]) == 0
    shown = capsys.readouterr().out
    assert "status: withdrawn" in shown and "withdrawal_reason: wrong extract window" in shown
    # the cases it resolved say why, with the batch, and are counted on it
    with psycopg.connect(db.to_libpq(db_url)) as conn:
        reasons = conn.execute(
            "select resolved_reason, count(*) from audit.cases where status = 'resolved' group by 1"
        ).fetchall()
        assert reasons and all(r == "batch b-2 withdrawn" for r, _ in reasons)
        resolved = sum(n for _, n in reasons)
    assert f"cases_resolved: {resolved}" in shown


def test_withdrawal_needs_a_loaded_batch_a_reason_and_a_name(db_url, tmp_path, capsys):
    first, _ = _cohort(tmp_path)
    out = tmp_path / "out"
    assert main(["--quiet", "run", str(first), "--out", str(out)]) == 0
    assert main(["batch", "withdraw", "b-9", "--reason", "x", "--by", "y", "--out", str(out)]) == 2
    assert "no batch b-9" in capsys.readouterr().err
    assert main(["batch", "withdraw", "b-1", "--reason", " ", "--by", "y", "--out", str(out)]) == 2
    assert "needs a reason" in capsys.readouterr().err
    assert main(["batch", "withdraw", "b-1", "--reason", "r", "--by", "y", "--out", str(out)]) == 0
    assert main(["batch", "withdraw", "b-1", "--reason", "r", "--by", "y", "--out", str(out)]) == 2
    assert "is withdrawn, not loaded" in capsys.readouterr().err


@pytest.mark.db
@pytest.mark.parametrize("seed, order", [
    (0, ("C1", "C2")), (1, ("C2", "C1")), (2, ("C3", "C1", "C2")), (3, ("B0",)),
    *((seed, None) for seed in range(4, 10)),
])  # fmt: skip
def test_withdrawals_in_any_order_leave_what_a_load_without_them_would(conn, tmp_path, seed, order):
    """B0, then C1, C2 and C3 correcting the same fills: withdrawing any of
    them, in any order, leaves each fill's versions chained as if the
    withdrawn batches had never been loaded."""
    import random

    from audit.batches import withdraw
    from audit.ingest import LoadSettings, ingest
    from tests.batches import base_tables, make_batch

    rng = random.Random(seed)
    names = ["B0", "C1", "C2", "C3"]
    days = {"B0": "30", "C1": "60", "C2": "90", "C3": "45"}
    held: dict[str, set[str]] = {}
    for i, name in enumerate(names):
        tables = base_tables(n_rx=12)
        if name != "B0":
            tables = {"prescriptions": [r for r in tables["prescriptions"]
                                        if rng.random() < 0.7 or r["rx_id"] == "rx1"]}  # fmt: skip
        for r in tables["prescriptions"]:
            r["days_supply"] = days[name]
        held[name] = {r["rx_id"] for r in tables["prescriptions"]}
        ingest(conn, make_batch(tmp_path, name, tables, created_at=f"2026-01-0{i + 1}T02:00:00Z"),
               LoadSettings(allow_replace=True))  # fmt: skip
    gone = list(order) if order else rng.sample(names, rng.randint(1, 4))
    for name in gone:
        withdraw(conn, name, "test", "tester")
    kept = [n for n in names if n not in gone]
    want = {}
    for rx in held["B0"]:
        chain = [n for n in kept if rx in held[n]]
        if not chain:
            continue
        for before, after in zip(chain, [*chain[1:], None], strict=True):
            want[(rx, before)] = (after is None, after)
    got = {
        (rx, b): (current, s)
        for rx, b, current, s in conn.execute(
            "select p.rx_id, b.batch_id, p.is_current, s.batch_id from core.prescriptions p"
            " join audit.batches b on b.batch_no = p.batch_no"
            " left join audit.batches s on s.batch_no = p.superseded_by"
        )
    }
    assert got == want, (gone, held)
