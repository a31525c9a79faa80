"""What the overview shows (audit/overview.py), the measures after review,
and the workspace's overview over a real run."""

from __future__ import annotations

import csv
import datetime as dt
import re

import pytest
from starlette.testclient import TestClient

from audit import overview, users
from audit.cli import main
from audit.generate import generate
from audit.web.app import create_app
from tests.test_security import login  # noqa: F401 - the fixture

D = dt.date.fromisoformat


def rule(rid, severity, matures=0, order=0):
    return {"rule_id": rid, "title": f"title of {rid}", "severity": severity,
            "report_order": order, "matures_days": matures}  # fmt: skip


def row(rid, period, site, num, den, outlier=False, after=None):
    return {"measure_id": rid, "period": period, "site_id": site, "numerator": num,
            "denominator": den, "outlier": outlier,
            "numerator_after_review": num if after is None else after}  # fmt: skip


@pytest.mark.parametrize(("period", "as_of", "days", "expected"), [
    ("2025-Q4", "2025-12-31", 60, "2025-11-02"),   # the last 60 days of the quarter
    ("2025-Q3", "2025-12-31", 60, None),           # wholly older than 60 days
    ("2025-Q4", "2026-01-15", 60, "2025-11-17"),   # the window crosses into the next quarter
    ("2026-Q1", "2026-01-15", 60, "2026-01-01"),
    ("2025-Q4", "2025-12-31", 0, None),            # raised at once: never maturing
    ("2025-Q3", "2025-10-05", 30, "2025-09-06"),
])  # fmt: skip
def test_a_quarter_is_maturing_for_the_last_days_a_rule_needs(period, as_of, days, expected):
    got = overview.maturing_from(period, D(as_of), days)
    assert got == (D(expected) if expected else None)


def test_quarter_bounds():
    assert overview.quarter_bounds("2024-Q1") == (D("2024-01-01"), D("2024-03-31"))
    assert overview.quarter_bounds("2024-Q4") == (D("2024-10-01"), D("2024-12-31"))
    assert overview.quarter_of(D("2024-08-15")) == "2024-Q3"


def test_headlines_rank_by_severity_then_rate_and_leave_info_out():
    rules = [rule("LOW-BIG", "low", order=1), rule("MED-SMALL", "medium", order=2),
             rule("MED-BIG", "medium", 60, order=3),
             rule("MIXED", "high (long-term) / medium (new start)", order=4),
             rule("CRIT-TINY", "critical (given) / info (reported use)", order=5),
             rule("INFO", "info", order=6)]  # fmt: skip
    rows = [row("LOW-BIG", "2025-Q4", "ALL", 50, 100), row("MED-SMALL", "2025-Q4", "ALL", 2, 100),
            row("MED-BIG", "2025-Q4", "ALL", 20, 100, after=15),
            row("MED-BIG", "2025-Q3", "ALL", 30, 100), row("MIXED", "2025-Q4", "ALL", 1, 100),
            row("CRIT-TINY", "2025-Q4", "ALL", 1, 1000), row("INFO", "2025-Q4", "ALL", 90, 100)]  # fmt: skip
    heads = overview.headlines(rules, rows, D("2025-12-31"))
    assert [h["rule_id"] for h in heads] == ["CRIT-TINY", "MIXED", "MED-BIG", "MED-SMALL",
                                             "LOW-BIG"]  # fmt: skip
    assert [h["rank"] for h in heads] == [1, 2, 3, 4, 5]
    big = heads[2]
    assert (big["rate"], big["rate_after_review"], big["previous_rate"]) == (0.2, 0.15, 0.3)
    assert big["change_points"] == pytest.approx(-10.0)
    assert big["maturing_from"] == D("2025-11-02") and big["previous_maturing_from"] is None
    assert heads[3]["previous_rate"] is None and heads[3]["change_points"] is None
    assert all(h["maturing_from"] is None for h in heads if h["rule_id"] != "MED-BIG")


def test_the_heat_map_gives_numbers_outliers_and_shades():
    rules = [rule("A", "medium"), rule("B", "low"), rule("I", "info")]
    rows = [row("A", "2025-Q4", "s2", 10, 100, outlier=True), row("A", "2025-Q4", "s1", 0, 80),
            row("A", "2025-Q4", "ALL", 10, 180), row("B", "2025-Q4", "s1", 5, 80),
            row("A", "2025-Q3", "s1", 40, 80)]  # fmt: skip
    m = overview.heatmap(rules, rows, "2025-Q4", D("2025-12-31"))
    assert m["sites"] == ["s1", "s2"] and (m["from"], m["to"]) == (D("2025-10-01"), D("2025-12-31"))
    assert [line["rule_id"] for line in m["rules"]] == ["A", "B"]
    a = {c["site_id"]: c for c in m["rules"][0]["cells"]}
    assert (a["s2"]["numerator"], a["s2"]["denominator"], a["s2"]["outlier"]) == (10, 100, True)
    assert a["s2"]["level"] == overview.SHADES  # the largest rate in the map
    assert a["s1"]["level"] == 0 and not a["s1"]["outlier"]
    assert (a["s2"]["numerator_after_review"], a["s2"]["rate_after_review"]) == (10, 0.1)
    b = {c["site_id"]: c for c in m["rules"][1]["cells"]}
    assert b["s2"]["denominator"] is None and b["ALL"]["denominator"] is None  # no data


def test_every_rule_has_its_own_colour():
    rules = [rule(f"R{i:02d}", "low", order=i) for i in range(13)]
    colours = overview.colours(rules)
    assert len(set(colours.values())) == 13


PASSWORD = "overview-password-1"


@pytest.fixture
def ran(db_url, tmp_path):
    generate(500, 11, tmp_path / "cohort")
    assert main(["--quiet", "run", str(tmp_path / "cohort"), "--out", str(tmp_path / "out")]) == 0
    return tmp_path


def _sign_in(client, name: str) -> None:
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token})


def _alone_case(conn):
    """An open counted case whose patient has no other open case of that rule
    in its quarter: reviewing it false_positive lowers that numerator by one."""
    return conn.execute(
        "select c.case_id, c.rule_id, to_char(c.case_date, 'YYYY-\"Q\"Q') from audit.cases as c"
        " where c.status = 'open' and c.severity <> 'info' and not exists (select 1 from"
        "  audit.cases as o where o.patient_id = c.patient_id and o.rule_id = c.rule_id"
        "  and o.case_id <> c.case_id and o.status = 'open'"
        "  and date_trunc('quarter', o.case_date) = date_trunc('quarter', c.case_date))"
        " order by c.case_date desc, c.case_id limit 1"
    ).fetchone()


def _all_sites(path, rule_id, period):
    with open(path, newline="") as fh:
        return next(r for r in csv.DictReader(fh) if r["measure_id"] == rule_id
                    and r["period"] == period and r["site_id"] == "ALL" and not r["prescriber_id"])  # fmt: skip


def test_measures_carry_the_numerator_after_review(ran, conn):
    case_id, rule_id, period = _alone_case(conn)
    before = _all_sites(ran / "out" / "latest" / "measures.csv", rule_id, period)
    assert before["numerator_after_review"] == before["numerator"]
    assert main(["--quiet", "review", case_id, "--status", "false_positive",
                 "--note", "not on the drug", "--reviewer", "qi-1"]) == 0  # fmt: skip
    assert main(["--quiet", "run", str(ran / "cohort"), "--out", str(ran / "out"),
                 "--full-audit"]) == 0  # fmt: skip
    after = _all_sites(ran / "out" / "latest" / "measures.csv", rule_id, period)
    assert after["numerator"] == before["numerator"]
    assert int(after["numerator_after_review"]) == int(before["numerator"]) - 1
    assert float(after["rate_after_review"]) == pytest.approx(
        (int(before["numerator"]) - 1) / int(before["denominator"]), abs=1e-6
    )
    # the shared measures carry no after-review figure (the difference is a small count)
    with open(ran / "out" / "latest" / "measures_shared.csv", newline="") as fh:
        assert "numerator_after_review" not in next(csv.reader(fh))


def test_the_workspace_overview_ranks_shows_review_rates_and_links_cells(ran, conn, login):  # noqa: F811
    users.add("olive", "reviewer", ["site-01"], PASSWORD)
    users.add("otto", "auditor", [], PASSWORD)
    app = create_app(login("rxaudit_web"), secret="overview-secret")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        _sign_in(c, "otto")
        page = c.get("/").text
        ranked = re.findall(r'<tr data-rule="([^"]+)">', page)
        assert len(ranked) == 12 and "VEN-SEQUENCE" not in ranked
        severities = dict(conn.execute("select rule_id, severity from audit.rules").fetchall())
        order = [min([i for i, w in enumerate(("critical", "high", "medium", "low"))
                      if w in severities[r]] or [9]) for r in ranked]  # fmt: skip
        assert order == sorted(order)
        assert "maturing: cases dated from" in page
        # a heat-map cell links to its rule, site and quarter
        link = re.search(r'href="(/cases\?rule=([^&]+)&amp;site=([^&]+)&amp;status=open'
                         r'&amp;quarter=(\d{4}-Q\d))">[1-9]', page)  # fmt: skip
        assert link
        listed = c.get(link.group(1).replace("&amp;", "&")).text
        dates = re.findall(r'<td class="nowrap">(\d{4}-\d\d-\d\d)</td>', listed)
        lo, hi = overview.quarter_bounds(link.group(4))
        assert dates and all(lo <= D(d) <= hi for d in dates)
        # a false positive lowers the rate after review at once, not the raw rate
        case_id, rule_id, period = _alone_case(conn)
        latest = max(re.findall(r"(\d{4}-Q\d)</div>", page))

        def cells(html):
            line = html.split(f'<tr data-rule="{rule_id}">')[1].split("</tr>")[0]
            return re.findall(r'<td class="n">([\d.]+%|—)<div class="sub">(\d+|—)', line)

        before = cells(page)
        # auditors read: a reviewer of the case's site reviews it
        site = conn.execute("select site_id from audit.cases where case_id = %s",
                            (case_id,)).fetchone()[0]  # fmt: skip
        users.add("rita", "reviewer", [site], PASSWORD)
        with TestClient(app, base_url="http://127.0.0.1") as rita:
            _sign_in(rita, "rita")
            case = rita.get(f"/cases/{case_id}").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', case).group(1)
            r = rita.post(f"/cases/{case_id}/reviews", data={"status": "false_positive",
                          "note": "documented allergy", "csrf_token": token},
                          follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
        after = cells(c.get("/").text)
        assert after[0] == before[0]  # the raw rate
        if period == latest:
            assert int(after[1][1]) == int(before[1][1]) - 1
        else:
            assert after[1] == before[1]


def test_the_trend_is_the_headlines_rate_over_the_last_quarters():
    rules = [rule("A", "medium"), rule("B", "low")]
    periods = [f"{2022 + i // 4}-Q{i % 4 + 1}" for i in range(14)]
    rows = [row("A", p, "ALL", i, 100) for i, p in enumerate(periods)]
    rows += [row("B", periods[-1], "ALL", 5, 50), row("A", periods[-1], "s1", 99, 100)]
    heads = overview.headlines(rules, rows, D("2025-06-30"))
    t = overview.trend(heads, rows)
    assert t["periods"] == periods[-overview.TREND_QUARTERS :]
    a, b = t["series"]
    assert (a["rule_id"], b["rule_id"]) == ("A", "B")
    assert a["rates"] == [i / 100 for i in range(2, 14)]
    assert b["rates"] == [None] * 11 + [0.1]


def test_changes_say_their_direction_and_the_heat_map_keeps_its_caption(ran, conn, login):  # noqa: F811
    """Workspace round 2, finding 10: a change is worse (up) or better (down),
    '0.0' only when it is zero; the heat map and its caption print together."""
    users.add("otto", "auditor", [], PASSWORD)
    app = create_app(login("rxaudit_web"), secret="overview-secret")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        _sign_in(c, "otto")
        page = c.get("/").text
        css = c.get("/static/web.css").text
    changes = re.findall(r'<span class="(worse|better|same)">([^<]*)</span>', page)
    assert changes
    for kind, text in changes:
        if kind == "same":
            assert text == "0.0 pts, no change"
        else:
            assert text.endswith(f"pts, {kind}") and not text.startswith(("+0.0", "-0.0"))
            assert text.startswith("+") == (kind == "worse")
    assert '<section class="heatmap">' in page and "section.heatmap { break-inside: avoid" in css


def test_a_reviewer_sees_their_sites_ranked_beside_all_sites(ran, conn, login):  # noqa: F811
    """Workspace round 2, finding 8: the user's sites ranked as all sites
    are, with the all-sites rate beside; another site's cell says it is one
    the user cannot open."""
    users.add("olive", "reviewer", ["site-01"], PASSWORD)
    app = create_app(login("rxaudit_web"), secret="overview-secret")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        _sign_in(c, "olive")
        page = c.get("/").text
    assert "At your sites (site-01)" in page
    mine = re.findall(r'<tr data-mine-rule="([^"]+)">', page)
    assert mine and len(mine) == len(set(mine))
    site_rows = {r[0]: r[1:] for r in conn.execute(
        "select m.measure_id, m.numerator, m.denominator from audit.measures m"
        " where m.site_id = 'site-01' and m.prescriber_id = '' and m.kind = 'rule'"
        " and m.period = (select max(period) from audit.measures where kind = 'rule')")}  # fmt: skip
    first = page.split(f'<tr data-mine-rule="{mine[0]}">')[1].split("</tr>")[0]
    num, den = site_rows[mine[0]]
    assert f"{num} of {den}" in first
    assert "site-02: a site you cannot open" in page and "not your site" in page
    assert 'href="/cases?rule=' in page and "&amp;site=site-02&amp;" not in page
