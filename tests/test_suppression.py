"""Small-cell suppression of shared measures, with adversarial tables."""

from __future__ import annotations

import itertools

import pytest

from audit.measures import complementary, is_small, suppress_rows

pytestmark = pytest.mark.unit


def recoverable(values, lines, suppressed) -> set:
    """Cells an adversary can solve for: iterate 'a line with one unknown'."""
    known = {c for line in lines for c in line if c not in suppressed}
    solved = set()
    changed = True
    while changed:
        changed = False
        for line in lines:
            unknown = [c for c in line if c not in known]
            if len(unknown) == 1:
                known.add(unknown[0])
                solved.add(unknown[0])
                changed = True
    return solved & suppressed


def grid(cells: dict[tuple[str, str], int], with_column_totals: bool = False):
    """A table with row totals ('ALL' column) and optionally column totals."""
    rows = sorted({r for r, _ in cells})
    cols = sorted({c for _, c in cells})
    values = dict(cells)
    lines = []
    for r in rows:
        values[(r, "ALL")] = sum(cells[(r, c)] for c in cols)
        lines.append([(r, c) for c in [*cols, "ALL"]])
    if with_column_totals:
        for c in [*cols, "ALL"]:
            values[("ALL", c)] = sum(values[(r, c)] for r in rows)
            lines.append([(r, c) for r in [*rows, "ALL"]])
    return values, lines


def test_row_total_with_one_small_cell():
    values, lines = grid({("q1", "A"): 25, ("q1", "B"): 5, ("q1", "C"): 40})
    primary = {k for k, v in values.items() if is_small(v)}
    assert primary == {("q1", "B")}
    hidden = complementary(values, lines, primary)
    assert ("q1", "B") in hidden and len(hidden) >= 2
    assert recoverable(values, lines, hidden) == set()
    # The smallest other cell is the complement chosen.
    assert hidden == {("q1", "B"), ("q1", "A")}


def test_column_with_exactly_one_suppressed_cell():
    cells = {("q1", "A"): 30, ("q1", "B"): 3, ("q2", "A"): 50, ("q2", "B"): 40,
             ("q3", "A"): 60, ("q3", "B"): 45}  # fmt: skip
    values, lines = grid(cells, with_column_totals=True)
    primary = {k for k, v in values.items() if is_small(v)}
    hidden = complementary(values, lines, primary)
    assert recoverable(values, lines, hidden) == set()
    for line in lines:
        assert sum(c in hidden for c in line) != 1


@pytest.mark.parametrize("seed", range(25))
def test_random_tables_never_leak(seed):
    import random

    rng = random.Random(seed)
    rows = [f"q{i}" for i in range(rng.randint(1, 5))]
    cols = [f"s{i}" for i in range(rng.randint(2, 6))]
    cells = {(r, c): rng.choice([0, 0, 1, 2, 5, 9, 10, 11, 12, 30, 80])
             for r, c in itertools.product(rows, cols)}  # fmt: skip
    values, lines = grid(cells, with_column_totals=rng.random() < 0.5)
    hidden = complementary(values, lines, {k for k, v in values.items() if is_small(v)})
    assert all(k in hidden for k, v in values.items() if is_small(v))
    assert recoverable(values, lines, hidden) == set()


def _row(site, num, den, period="2025-Q1"):
    rate = num / den if den else None
    return {"measure_id": "BZD-PTSD", "kind": "rule", "period": period, "site_id": site,
            "numerator": num, "denominator": den, "rate": rate, "ci_low": 0.0, "ci_high": 1.0,
            "outlier": False}  # fmt: skip


def test_rates_and_intervals_are_withheld_with_their_counts():
    rows = [_row("A", 4, 200), _row("B", 30, 300), _row("C", 50, 400), _row("ALL", 84, 900)]
    out = {r["site_id"]: r for r in suppress_rows(rows)}
    # A's numerator is small; its rate would give it away (rate x denominator).
    assert out["A"]["numerator"] is None and out["A"]["rate"] is None
    assert out["A"]["ci_low"] is None and out["A"]["outlier"] is None
    # The complement: B, the smallest other numerator, so ALL - B - C is not A.
    assert out["B"]["numerator"] is None and out["B"]["rate"] is None
    assert out["C"]["rate"] == 50 / 400
    for r in out.values():
        if r["numerator"] is None or r["denominator"] is None:
            assert r["rate"] is None


def test_small_complement_of_a_rate_is_suppressed():
    # 95 of 100: the 5 patients without the finding are a small cell too.
    rows = [_row("A", 95, 100), _row("B", 40, 300), _row("C", 50, 400), _row("ALL", 185, 800)]
    out = {r["site_id"]: r for r in suppress_rows(rows)}
    assert out["A"]["numerator"] is None and out["A"]["rate"] is None
    assert out["A"]["denominator"] == 100


def test_small_denominators_are_suppressed_with_a_complement():
    rows = [_row("A", 0, 8), _row("B", 40, 300), _row("C", 50, 400), _row("ALL", 90, 708)]
    out = {r["site_id"]: r for r in suppress_rows(rows)}
    assert out["A"]["denominator"] is None
    assert sum(r["denominator"] is None for r in out.values()) >= 2
    assert all(r["rate"] is None for r in out.values() if r["denominator"] is None)


def test_zero_cells_are_published():
    rows = [_row("A", 0, 200), _row("B", 30, 300), _row("ALL", 30, 500)]
    out = {r["site_id"]: r for r in suppress_rows(rows)}
    assert out["A"]["numerator"] == 0 and out["A"]["rate"] == 0
    assert not any(r["suppressed"] for r in out.values())


def test_every_patient_having_the_finding_is_suppressed():
    # 12 of 12: no small count, but it says every patient of the site has it
    rows = [_row("A", 12, 12), _row("B", 40, 300), _row("C", 50, 400), _row("ALL", 102, 712)]
    out = {r["site_id"]: r for r in suppress_rows(rows)}
    assert out["A"]["numerator"] is None and out["A"]["rate"] is None
    assert sum(r["numerator"] is None for r in out.values()) >= 2  # and a complement


# -- the release rule: no two releases differ by 1-10 (hardening 3, finding 26) --


def _release_sequence(seed: int, runs: int = 12) -> list[list[dict]]:
    """Shared releases of one rule measure over a random walk of its counts:
    two sites and the all-sites total in two quarters."""
    import random

    from audit import releases

    rng = random.Random(seed)
    true = {(p, s): [rng.randint(20, 40), rng.randint(60, 90)] for p in ("Q1", "Q2")
            for s in ("s1", "s2")}  # fmt: skip
    published: list[list[dict]] = []
    history: dict = {}
    last: dict = {}
    for _ in range(runs):
        for cell in true.values():  # a few patients change between runs
            cell[0] = max(0, cell[0] + rng.choice([-3, -1, 0, 0, 1, 1, 2, 6, 12]))
            cell[1] = max(cell[0], cell[1] + rng.choice([-2, 0, 0, 1, 3, 11]))
        rows = []
        for p in ("Q1", "Q2"):
            cells = [(s, *true[(p, s)]) for s in ("s1", "s2")]
            cells.append(("ALL", sum(c[1] for c in cells), sum(c[2] for c in cells)))
            for site, num, den in cells:
                rows.append({"measure_id": "BZD-PTSD", "kind": "rule", "period": p,
                             "site_id": site, "numerator": num, "denominator": den,
                             "rate": num / den, "ci_low": None, "ci_high": None,
                             "outlier": False})  # fmt: skip
        rows = suppress_rows(rows)
        out = releases.hold(rows, history, last)
        for r in out:
            cell = history.setdefault(releases.cell_of(r), {"numerator": set(),
                                                            "denominator": set()})  # fmt: skip
            for c in releases.COUNTS:
                if r[c] is not None:
                    cell[c].add(r[c])
        last = {releases.cell_of(r): r for r in out}
        published.append(out)
    return published


@pytest.mark.parametrize("seed", range(25))
def test_no_two_releases_differ_by_one_to_ten(seed):
    published = _release_sequence(seed)
    held = 0
    for a, b in itertools.combinations(published, 2):
        before = {(r["period"], r["site_id"]): r for r in a}
        for r in b:
            old = before[(r["period"], r["site_id"])]
            for c in ("numerator", "denominator"):
                if r[c] is not None and old[c] is not None:
                    assert not 0 < abs(r[c] - old[c]) <= 10, (c, old[c], r[c])
    for release in published:
        held += sum(r["held"] for r in release)
        # a held line is one release's line: its cells still add up
        for p in ("Q1", "Q2"):
            line = {r["site_id"]: r for r in release if r["period"] == p}
            if all(line[s]["numerator"] is not None for s in line):
                assert line["ALL"]["numerator"] == line["s1"]["numerator"] + line["s2"]["numerator"]
    assert held > 0  # the walk moves by one patient often: the rule held something


def test_a_one_patient_change_is_held_and_a_large_one_published():
    from audit import releases

    row = {"measure_id": "M", "kind": "process", "period": "Q1", "site_id": "ALL",
           "numerator": 31, "denominator": 61, "rate": 31 / 61, "ci_low": 0.4, "ci_high": 0.6,
           "outlier": False, "suppressed": False}  # fmt: skip
    before = {**row, "numerator": 30, "denominator": 60, "rate": 0.5}
    history = {("M", "Q1", "ALL"): {"numerator": {30}, "denominator": {60}}}
    out = releases.hold([row], history, {("M", "Q1", "ALL"): before})
    assert (out[0]["numerator"], out[0]["denominator"], out[0]["rate"], out[0]["held"]) == (
        30, 60, 0.5, True)  # fmt: skip
    far = {**row, "numerator": 41, "denominator": 71}
    out = releases.hold([far], history, {("M", "Q1", "ALL"): before})
    assert (out[0]["numerator"], out[0]["held"]) == (41, False)
