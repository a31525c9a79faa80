"""Measures of a run, and their small-cell-suppressed shared version.

The measures themselves are SQL (``sql/report/measures.sql`` and
``process_measures.sql``). This module runs them and derives
``audit.measures_shared``: the site-level measures with every count from 1 to
10 suppressed (CMS cell-size policy), with complementary suppression so that no
suppressed count can be recovered from a published total, and with rates and
intervals withheld wherever a count behind them is.

The suppression works on tables whose lines are linear: in each quarter, the
sites' counts and the all-sites total ('ALL'). A line holding exactly one
suppressed count would give it away (total minus the others), so another count
of that line is suppressed too, the smallest one, until no line has exactly
one. Counts of distinct patients are not strictly additive across sites (a
patient may visit two), which only makes recovery harder; the rule treats them
as additive to be safe. Prescriber-level rows are never shared.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import psycopg
from psycopg import sql

from audit import db

SMALL_MIN, SMALL_MAX = 1, 10
MEASURES_SQL = db.SQL_DIR / "report" / "measures.sql"
PROCESS_SQL = db.SQL_DIR / "report" / "process_measures.sql"


def is_small(value: int | None) -> bool:
    return value is not None and SMALL_MIN <= value <= SMALL_MAX


def complementary(
    values: dict[Hashable, int],
    lines: Iterable[Sequence[Hashable]],
    suppressed: set[Hashable],
) -> set[Hashable]:
    """Extend ``suppressed`` until no line holds exactly one suppressed cell.

    ``values`` maps every cell to its count (cells absent from ``values`` are
    known zeros); each line is a set of cells tied by one linear equation
    (a total and its parts). Among a line's published cells the smallest
    positive one is suppressed first, then a zero.
    """
    lines = [list(line) for line in lines]
    suppressed = set(suppressed)
    changed = True
    while changed:
        changed = False
        for line in lines:
            hidden = [c for c in line if c in suppressed]
            if len(hidden) != 1:
                continue
            candidates = [c for c in line if c not in suppressed]
            if not candidates:
                continue
            candidates.sort(key=lambda c: (values.get(c, 0) == 0, values.get(c, 0), str(c)))
            suppressed.add(candidates[0])
            changed = True
    return suppressed


def suppress_rows(rows: list[dict], shared_denominators: dict | None = None) -> list[dict]:
    """Suppress one measure's site-level rows (keys: period, site_id, numerator,
    denominator, rate, ci_low, ci_high, outlier). Returns new rows with
    suppressed values set to None and a ``suppressed`` flag.

    ``shared_denominators`` (period, site) -> suppressed?, when several
    measures share one denominator table, keeps its suppression consistent.
    """
    by_cell = {(r["period"], r["site_id"]): r for r in rows}
    periods = sorted({r["period"] for r in rows})
    sites = sorted({r["site_id"] for r in rows if r["site_id"] != "ALL"})
    lines = [[(p, s) for s in [*sites, "ALL"]] for p in periods]

    den = {k: r["denominator"] for k, r in by_cell.items()}
    if shared_denominators is not None:
        den_hidden = {k for k in by_cell if shared_denominators.get(k)}
    else:
        den_hidden = complementary(den, lines, {k for k, v in den.items() if is_small(v)})

    num = {k: r["numerator"] for k, r in by_cell.items()}
    primary = {
        k
        for k, r in by_cell.items()
        # a small count, or a small complement: 12 of 12 says every patient has it
        if is_small(r["numerator"])
        or (r["numerator"] > 0 and 0 <= r["denominator"] - r["numerator"] <= SMALL_MAX)
    }
    num_hidden = complementary(num, lines, primary)

    out = []
    for k, r in sorted(by_cell.items()):
        hide_n, hide_d = k in num_hidden, k in den_hidden
        hide_rate = hide_n or hide_d
        out.append(
            {
                **r,
                "numerator": None if hide_n else r["numerator"],
                "denominator": None if hide_d else r["denominator"],
                "rate": None if hide_rate else r["rate"],
                "ci_low": None if hide_rate else r["ci_low"],
                "ci_high": None if hide_rate else r["ci_high"],
                "outlier": None if hide_rate else r["outlier"],
                "suppressed": hide_n or hide_d,
            }
        )
    return out


def compute(conn: psycopg.Connection, run_id: str, params: dict) -> None:
    """Fill audit.measures and audit.measures_shared for ``run_id``."""
    cols = sql.SQL(
        "run_id, measure_id, kind, period, site_id, prescriber_id, denominator, numerator,"
        " rate, ci_low, ci_high, all_sites_rate, outlier"
    )
    # the rule measures also count their numerator after review
    for path, more in ((MEASURES_SQL, ", numerator_after_review, rate_after_review"),
                       (PROCESS_SQL, "")):  # fmt: skip
        conn.execute(
            sql.SQL("insert into audit.measures ({}{}) ").format(cols, sql.SQL(more))
            + sql.SQL(path.read_text()),
            {**params, "run_id": run_id},
        )
    cur = conn.execute(
        "select measure_id, kind, period, site_id, denominator, numerator, rate, ci_low,"
        " ci_high, outlier from audit.measures where run_id = %s and prescriber_id = ''"
        " order by measure_id, period, site_id",
        (run_id,),
    )
    names = [c.name for c in cur.description]
    by_measure: dict[str, list[dict]] = {}
    for row in cur.fetchall():
        r = dict(zip(names, row, strict=True))
        by_measure.setdefault(r["measure_id"], []).append(r)

    # Rule measures share one denominator table: suppress it once.
    rule_rows = [r for rows in by_measure.values() for r in rows if r["kind"] == "rule"]
    den_table = {(r["period"], r["site_id"]): r["denominator"] for r in rule_rows}
    periods = sorted({p for p, _ in den_table})
    sites = sorted({s for _, s in den_table if s != "ALL"})
    lines = [[(p, s) for s in [*sites, "ALL"]] for p in periods]
    den_hidden = complementary(den_table, lines, {k for k, v in den_table.items() if is_small(v)})
    shared_den = {k: (k in den_hidden) for k in den_table}

    shared: list[dict] = []
    for rows in by_measure.values():
        if rows[0]["kind"] == "rule":
            shared.extend(suppress_rows(rows, shared_den))
        else:
            shared.extend(suppress_rows(rows))
    from audit import releases

    shared = releases.hold(shared, *_published(conn, run_id))
    with conn.cursor() as c:
        c.executemany(
            "insert into audit.measures_shared (run_id, measure_id, kind, period, site_id,"
            " denominator, numerator, rate, ci_low, ci_high, outlier, suppressed, held)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    run_id,
                    r["measure_id"],
                    r["kind"],
                    r["period"],
                    r["site_id"],
                    r["denominator"],
                    r["numerator"],
                    r["rate"],
                    r["ci_low"],
                    r["ci_high"],
                    r["outlier"],
                    r["suppressed"],
                    r["held"],
                )  # fmt: skip
                for r in shared
            ],
        )


def _published(conn: psycopg.Connection, run_id: str) -> tuple[dict, dict]:
    """Every value each shared cell was published with by earlier runs, and
    the last release's rows by cell (for :func:`audit.releases.hold`)."""
    # each cell's distinct published values, gathered in PostgreSQL
    history = {
        (measure, period, site): {"numerator": set(nums), "denominator": set(dens)}
        for measure, period, site, nums, dens in conn.execute(
            "select s.measure_id, s.period, s.site_id,"
            " coalesce(array_agg(distinct s.numerator) filter (where s.numerator is not null), '{}'),"
            " coalesce(array_agg(distinct s.denominator) filter (where s.denominator is not null),"
            " '{}') from audit.measures_shared as s join audit.runs as r using (run_id)"
            " where s.run_id <> %s and r.status in ('ok', 'rejected')"
            " group by s.measure_id, s.period, s.site_id",
            (run_id,),
        )
    }
    cur = conn.execute(
        "select measure_id, period, site_id, denominator, numerator, rate, ci_low, ci_high,"
        " outlier, suppressed from audit.measures_shared where run_id = ("
        " select run_id from audit.runs where run_id <> %s and status in ('ok', 'rejected')"
        " order by finished_at desc nulls last, run_id desc limit 1)",
        (run_id,),
    )
    names = [c.name for c in cur.description]
    last = {}
    for row in cur.fetchall():
        r = dict(zip(names, row, strict=True))
        last[(r["measure_id"], r["period"], r["site_id"])] = r
    return history, last
