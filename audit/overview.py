"""What the overview shows, defined once for the workspace and the dashboard.

The workspace (``audit/web``) renders these on the server; the dashboard
(``audit/dashboard.py``) carries them in its payload and its script only
draws them. So a headline, a heat-map cell, a rule's colour and the fields
of a case panel mean the same in both.

- **Headlines**: one per counted rule (severity other than info), ranked by
  current harm: the rule's severity first (critical, high, medium, low),
  then its rate in the current quarter (the latest with data), then the
  report order. Each gives the rate before and after review, the previous
  quarter's rate and the change in percentage points, and whether either
  quarter is still maturing.
- **Maturing**: a rule whose cases can be raised only ``matures_days`` after
  their case date (rule.toml ``matures_after``) has not yet seen every case
  of the last ``matures_days`` days before ``as_of``: a quarter holding any
  such day is marked, with the first day not yet final.
- **Heat-map cell**: a rule at a site in one quarter: numerator, denominator,
  rate, outlier mark (the site's 95% interval wholly above the all-sites
  rate), and a shade level 0-5 of the rate against the largest in the map;
  its cases are the rule's at that site with a case date in that quarter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
# Kelly's colours of maximum contrast (white, black and the near-greys left
# out), one per rule in report order: no two rules share a colour.
RULE_COLOURS = (
    "#be0032", "#0067a5", "#f38400", "#008856", "#875692", "#c9a300", "#882d17",
    "#5fa2dd", "#e68fac", "#6b8e00", "#604e97", "#2b3d26", "#e25822", "#8a7b5c",
    "#b3446c", "#654522",
)  # fmt: skip
SHADES = 5  # heat-map levels above 0

# The case panel's facts, in order: (label, field of a case). The workspace's
# case page and the dashboard's panel both show these.
CASE_FACTS = (
    ("Case", "case_id"), ("Patient", "patient_id"), ("Case date", "case_date"),
    ("Severity", "severity"), ("Status", "status"), ("Latest review", "review_status"),
    ("Site", "site_id"), ("Prescriber", "prescriber_id"), ("First seen", "first_seen"),
    ("Last seen", "last_seen"), ("Summary", "summary"),
)  # fmt: skip
EVIDENCE_KINDS = ("fill", "session", "event", "diagnosis", "assessment")


TREND_QUARTERS = 12  # the trend shows this many latest quarters


def top_severity(severity: str) -> str:
    """A rule's highest severity: its catalogue text may name several
    ('high (long-term) / medium (new start)')."""
    found = [w for w in SEVERITY_RANK if w in severity.lower()]
    return min(found, key=SEVERITY_RANK.__getitem__) if found else severity


def quarter_of(day: dt.date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def quarter_bounds(period: str) -> tuple[dt.date, dt.date]:
    """'2025-Q3' -> (2025-07-01, 2025-09-30)."""
    year, q = int(period[:4]), int(period[-1])
    start = dt.date(year, 3 * q - 2, 1)
    nxt = dt.date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1)
    return start, nxt - dt.timedelta(days=1)


def maturing_from(period: str, as_of: dt.date | None, days: int) -> dt.date | None:
    """The first day of ``period`` whose cases may still be raised (those
    after ``as_of - days``), or None when the quarter is final for the rule."""
    if not days or as_of is None:
        return None
    start, end = quarter_bounds(period)
    first_open = as_of - dt.timedelta(days=days - 1)
    if first_open > end:
        return None
    return max(first_open, start)


def colours(rules: Iterable[dict]) -> dict[str, str]:
    """Each rule's colour, by report order (then id), stable across runs."""
    ordered = sorted(rules, key=lambda r: (r.get("report_order") or 0, r["rule_id"]))
    return {r["rule_id"]: RULE_COLOURS[i % len(RULE_COLOURS)] for i, r in enumerate(ordered)}


def _rate(num: int | None, den: int | None) -> float | None:
    return None if num is None or not den else num / den


def headlines(rules: list[dict], rows: list[dict], as_of: dt.date | None) -> list[dict]:
    """The ranked headlines from the rule measures' all-sites rows (keys
    measure_id, period, site_id, numerator, denominator, and optionally
    numerator_after_review)."""
    total = {(r["measure_id"], r["period"]): r for r in rows if r["site_id"] == "ALL"}
    periods = sorted({p for _, p in total})
    current = periods[-1] if periods else None
    previous = periods[-2] if len(periods) > 1 else None
    palette = colours(rules)
    out = []
    for rule in rules:
        if rule["severity"] == "info":
            continue
        rid, days = rule["rule_id"], int(rule.get("matures_days") or 0)
        now = total.get((rid, current), {})
        before = total.get((rid, previous), {})
        rate = _rate(now.get("numerator"), now.get("denominator"))
        prev = _rate(before.get("numerator"), before.get("denominator"))
        out.append({
            "rule_id": rid, "title": rule["title"], "severity": rule["severity"],
            "top_severity": top_severity(rule["severity"]),
            "colour": palette[rid], "period": current, "previous_period": previous,
            "numerator": now.get("numerator"), "denominator": now.get("denominator"),
            "rate": rate,
            "numerator_after_review": now.get("numerator_after_review"),
            "rate_after_review": _rate(now.get("numerator_after_review"), now.get("denominator")),
            "previous_rate": prev,
            "change_points": None if rate is None or prev is None else 100 * (rate - prev),
            "matures_days": days,
            "maturing_from": maturing_from(current, as_of, days) if current else None,
            "previous_maturing_from": maturing_from(previous, as_of, days) if previous else None,
        })  # fmt: skip
    out.sort(key=lambda h: (SEVERITY_RANK.get(h["top_severity"], 9),
                            -(h["rate"] if h["rate"] is not None else -1),
                            [r["rule_id"] for r in rules].index(h["rule_id"])))  # fmt: skip
    for rank, h in enumerate(out, 1):
        h["rank"] = rank
    return out


def trend(heads: list[dict], rows: list[dict]) -> dict:
    """The all-sites rate of each headline's rule over the last
    TREND_QUARTERS quarters: ``periods`` and, per rule in headline order,
    ``rates`` aligned with them (None: no measure that quarter)."""
    total = {(r["measure_id"], r["period"]): r for r in rows if r["site_id"] == "ALL"}
    periods = sorted({p for _, p in total})[-TREND_QUARTERS:]
    series = []
    for h in heads:
        got = [total.get((h["rule_id"], p), {}) for p in periods]
        series.append({"rule_id": h["rule_id"], "title": h["title"], "colour": h["colour"],
                       "rates": [_rate(g.get("numerator"), g.get("denominator")) for g in got]})  # fmt: skip
    return {"periods": periods, "series": series}


def heatmap(rules: list[dict], rows: list[dict], period: str | None,
            as_of: dt.date | None) -> dict:  # fmt: skip
    """The rule-by-site map of ``period`` (counted rules, in headline order
    is the caller's choice: here report order) from site-level rule rows
    (keys as in :func:`headlines`, plus outlier and optionally suppressed)."""
    cells = {(r["measure_id"], r["site_id"]): r for r in rows if r["period"] == period}
    sites = sorted({s for _, s in cells if s != "ALL"})
    counted = [r for r in rules if r["severity"] != "info"]
    top = max((_rate(c["numerator"], c["denominator"]) or 0 for c in cells.values()
               if c["site_id"] != "ALL"), default=0)  # fmt: skip
    palette = colours(rules)
    lines = []
    for rule in counted:
        line = []
        for site in [*sites, "ALL"]:
            c = cells.get((rule["rule_id"], site))
            rate = _rate(c["numerator"], c["denominator"]) if c else None
            line.append({
                "site_id": site,
                "numerator": c["numerator"] if c else None,
                "denominator": c["denominator"] if c else None,
                "rate": rate,
                "numerator_after_review": c.get("numerator_after_review") if c else None,
                "rate_after_review": _rate(c.get("numerator_after_review"), c["denominator"])
                if c else None,
                "outlier": bool(c and c.get("outlier")),
                "suppressed": bool(c and c.get("suppressed")),
                "level": 0 if not rate or not top else min(SHADES, max(1, round(SHADES * rate / top))),
            })  # fmt: skip
        lines.append({
            "rule_id": rule["rule_id"], "title": rule["title"], "colour": palette[rule["rule_id"]],
            "maturing_from": maturing_from(period, as_of, int(rule.get("matures_days") or 0))
            if period else None, "cells": line,
        })  # fmt: skip
    bounds = quarter_bounds(period) if period else (None, None)
    return {"period": period, "from": bounds[0], "to": bounds[1], "sites": sites, "rules": lines}
