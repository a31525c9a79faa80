"""The release rule of the shared measures: no two releases differ by 1-10.

Suppression keeps every published count at 0 or 11 and more, and its
complement too; but two releases could still be subtracted (30/60 in one,
31/61 in the next publishes one patient's change). So a line of a shared
table (a measure's sites and all-sites total in one quarter; for the rule
measures, which share one denominator table, every rule measure's line of
the quarter together) is published anew only when each of its counts is, for
its cell, equal to or at least 11 away from every value the cell was ever
published with. Otherwise the line is *held*: the last release's line is
published again, whole (counts, rates, intervals, suppression), with
``held`` true. Every value a cell is ever published with is thus 11 or more
from every other, and any two releases differ, cell by cell, by 0 or 11 or
more. Holding a whole line keeps it from one release, so no difference of
cells within a release mixes two of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from audit.measures import SMALL_MAX

COUNTS = ("numerator", "denominator")
KEPT = ("denominator", "numerator", "rate", "ci_low", "ci_high", "outlier", "suppressed")


def line_of(row: dict) -> tuple:
    """The line a shared cell belongs to."""
    return ("rule", row["period"]) if row["kind"] == "rule" else (row["measure_id"], row["period"])


def cell_of(row: dict) -> tuple:
    return (row["measure_id"], row["period"], row["site_id"])


def _too_close(value: int | None, published: Iterable[int]) -> bool:
    return value is not None and any(0 < abs(value - old) <= SMALL_MAX for old in published)


def hold(rows: list[dict], history: dict[tuple, dict[str, set[int]]],
         last: dict[tuple, dict]) -> list[dict]:  # fmt: skip
    """This run's shared rows after the release rule.

    ``history``: per cell, per count, every value it was published with;
    ``last``: the last release's rows by cell. A held cell that the last
    release did not have is published suppressed.
    """
    held_lines = {
        line_of(r)
        for r in rows
        if any(_too_close(r[c], history.get(cell_of(r), {}).get(c, ())) for c in COUNTS)
    }
    out = []
    for r in rows:
        if line_of(r) not in held_lines:
            out.append({**r, "held": False})
            continue
        before = last.get(cell_of(r))
        if before is None:
            out.append({**r, **dict.fromkeys(KEPT), "suppressed": True, "held": True})
        else:
            out.append({**r, **{k: before[k] for k in KEPT}, "held": True})
    return out
