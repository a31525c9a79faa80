"""The overview: headlines, trend and heat map of the latest run."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from audit import overview
from audit.web import charts
from audit.web.session import Signed, Workspace, to_login


def figures(ws: Workspace, s: Signed, quarter: str | None) -> dict:
    """Headlines, trend and heat map (audit.overview) of the latest run,
    with the numerators after review as the reviews stand now. All but the
    heat map of the asked quarter are kept until the next run or review."""
    state = s.conn.execute("select * from web.overview_state").fetchone() or {}
    key = (state.get("run_id"), state.get("last_review_id"))
    base = ws.figures.get(key)
    if base is None:
        rules = s.conn.execute(
            "select rule_id, title, severity, report_order, matures_days from web.rules"
            " order by report_order, rule_id"
        ).fetchall()
        now = {(r["rule_id"], r["period"], r["site_id"]): r["numerator_after_review"]
               for r in s.conn.execute("select * from web.rule_counts_now")}  # fmt: skip
        rows = s.conn.execute(
            "select measure_id, period, site_id, denominator, numerator, outlier"
            " from web.measures where kind = 'rule' and prescriber_id is null"
        ).fetchall()
        for r in rows:
            r["numerator_after_review"] = now.get((r["measure_id"], r["period"], r["site_id"]), 0)
        heads = overview.headlines(rules, rows, state.get("as_of"))
        periods = sorted({r["period"] for r in rows})
        base = {"as_of": state.get("as_of"), "run_id": state.get("run_id"),
                "last_review_id": state.get("last_review_id"), "headlines": heads,
                "periods": periods, "rules": rules, "rows": rows,
                "trend": charts.trend(overview.trend(heads, rows)) if periods else ""}  # fmt: skip
        if len(ws.figures) > 64:
            ws.figures.clear()
        ws.figures[key] = base
    periods = base["periods"]
    chosen = quarter if quarter in periods else (periods[-1] if periods else None)
    heat = overview.heatmap(base["rules"], base["rows"], chosen, base["as_of"])
    return {**base, "quarter": chosen, "heat": heat}


def overview_page(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if not s.me:
            return to_login()
        fig = figures(ws, s, request.query_params.get("quarter"))
        key = ("mine", fig["run_id"], fig["last_review_id"], s.me["role"],
               tuple(s.me["sites"] or ()))  # fmt: skip
        mine = ws.figures.get(key)
        if mine is None:
            mine = ws.figures[key] = {r["rule_id"]: r for r in s.conn.execute(
                "select rule_id, count(*) as open, count(*) filter (where reviewed)"
                " as reviewed from web.case_index where status = 'open' group by rule_id")}  # fmt: skip
        sites = [] if s.me["role"] == "auditor" else list(s.me["sites"] or [])
        return s.page("overview.html", title="Overview", fig=fig, mine=mine, sites=sites,
                      at_my_sites=my_sites(fig, sites))  # fmt: skip


def my_sites(fig: dict, sites: list[str]) -> list[dict]:
    """The headlines ranked for the user's sites: each rule's counts summed
    over those sites (a patient seen at two of them counts twice), beside
    the all-sites rate of the same quarter. Empty for an auditor."""
    if not sites:
        return []
    summed: dict[tuple, dict] = {}
    for r in fig["rows"]:
        if r["site_id"] not in sites or r["denominator"] is None:
            continue
        key = (r["measure_id"], r["period"])
        cell = summed.setdefault(key, {"measure_id": r["measure_id"], "period": r["period"],
                                       "site_id": "ALL", "numerator": 0, "denominator": 0,
                                       "numerator_after_review": 0})  # fmt: skip
        cell["numerator"] += r["numerator"] or 0
        cell["denominator"] += r["denominator"] or 0
        cell["numerator_after_review"] += r.get("numerator_after_review") or 0
    heads = overview.headlines(fig["rules"], list(summed.values()), fig["as_of"])
    everyone = {h["rule_id"]: h for h in fig["headlines"]}
    for h in heads:
        h["all_sites_rate"] = everyone.get(h["rule_id"], {}).get("rate")
    return heads
