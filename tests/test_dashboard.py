"""The dashboard in a real headless Chromium, with the network off."""

from __future__ import annotations

import json
import shutil

import pytest

from audit import db
from audit.cli import main
from audit.generate import generate

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def conn_evidence(url: str, case_id: str) -> list[tuple[str, str]]:
    """(kind, ISO date) of a case's session evidence, read from the source rows."""
    with db.connect(url) as conn:
        return conn.execute(
            "select 'session', to_char(s.session_date, 'YYYY-MM-DD') from audit.cases as c"
            " cross join lateral unnest(string_to_array(c.evidence, ';')) as e"
            " join core.therapy_sessions as s on s.is_current"
            "  and e = 'therapy_sessions:' || s.session_id where c.case_id = %s",
            (case_id,),
        ).fetchall()


def _open(browser, path, errors):
    context = browser.new_context(offline=True, viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"request {r.url}")
            if not r.url.startswith(("file:", "data:", "blob:")) else None)  # fmt: skip
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    return page


def test_dashboard_renders_filters_and_opens_a_case(db_url, tmp_path, browser):
    generate(600, 4, tmp_path / "cohort")
    assert main(["--quiet", "run", str(tmp_path / "cohort"), "--out", str(tmp_path / "out"),
                 "--shared"]) == 0  # fmt: skip
    latest = tmp_path / "out" / "latest"
    errors: list[str] = []
    page = _open(browser, latest / "dashboard.html", errors)

    assert page.locator("#trend .main-svg").count() > 0  # Plotly drew the trend
    assert page.locator("#heatmap .heatmaplayer, #heatmap .hm").count() > 0
    # one headline per counted rule: VEN-SEQUENCE (info only) is listed, never a rate
    assert page.locator("tr.headline").count() == 12
    assert "VEN-SEQUENCE" not in page.inner_text("#headline")
    before = page.inner_text("#case-count")
    page.select_option("#f-rule", "PSY-INCOMPLETE")
    after = page.inner_text("#case-count")
    assert before != after
    rules = set(page.locator("#case-table tbody tr td:nth-child(2)").all_inner_texts())
    assert rules == {"PSY-INCOMPLETE"}
    # workspace round 2, finding 10: newest first, excluded cases only when asked
    shown = page.locator("#case-table tbody tr td:nth-child(4)").all_inner_texts()
    assert "excluded" not in shown
    dates = page.locator("#case-table tbody tr td:nth-child(1)").all_inner_texts()
    assert dates == sorted(dates, reverse=True)
    page.select_option("#f-severity", "medium")
    page.locator("#case-table tbody tr").first.click()
    page.wait_for_selector("#panel:not([hidden])")
    assert "PSY-INCOMPLETE" in page.inner_text("#panel-title")
    assert "9-15 sessions" in page.inner_text("#panel-guideline")
    assert page.locator("#timeline .main-svg").count() > 0
    # the case's evidence is drawn: its therapy sessions as ticks on the timeline
    case_id = page.locator("#panel-facts dd").first.inner_text()
    evidence = conn_evidence(db_url, case_id)
    drawn = page.evaluate(
        "() => document.getElementById('timeline').data"
        ".map((t) => ({name: t.name, x: t.x, y: t.y}))"
    )
    sessions = [t for t in drawn if t["name"] == "sessions"]
    assert len(sessions) == 1
    assert sorted(sessions[0]["x"]) == sorted(d for kind, d in evidence if kind == "session")
    assert all(label.endswith(" session") for label in sessions[0]["y"])
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
    assert (shots / "dashboard.png").stat().st_size > 10_000
    assert errors == []

    shared = _open(browser, latest / "dashboard_shared.html", errors)
    assert shared.locator("#case-table").count() == 0
    assert shared.locator("#heatmap .main-svg").count() > 0
    shared.screenshot(path=str(shots / "dashboard_shared.png"), full_page=True)
    assert errors == []

    html = (latest / "dashboard_shared.html").read_text()
    import base64
    import gzip

    packed = html.split('<script id="payload" type="application/octet-stream">')[1].split("<")[0]
    payload = gzip.decompress(base64.b64decode(packed)).decode()
    assert "pt-0" not in payload and "pt-0" not in html
    assert "dr-" not in payload
    doc = json.loads(payload)
    assert doc["meta"]["shared"] is True
    # no unsuppressed total crossing the suppressed cells, no batch-level count
    assert doc["meta"]["counts"] == {}
    assert set(doc["quality"]["rows_in"]) == {None}
    assert set(doc["quality"]["rows_quarantined"]) == {None}


def _top_severity(text: str) -> int:
    ranks = [i for i, w in enumerate(("critical", "high", "medium", "low")) if w in text]
    return min(ranks) if ranks else 9


def test_dashboard_ranks_marks_maturing_filters_a_cell_and_prints(db_url, tmp_path, browser):
    import csv
    import datetime as dt
    import subprocess

    generate(600, 7, tmp_path / "cohort")
    assert main(["--quiet", "run", str(tmp_path / "cohort"), "--out", str(tmp_path / "out")]) == 0
    latest = tmp_path / "out" / "latest"
    with open(latest / "measures.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "rule" and r["site_id"] == "ALL"
                and not r["prescriber_id"]]  # fmt: skip
    current = max(r["period"] for r in rows)
    with db.connect(db_url) as conn:
        rules = {r[0]: (r[1], r[2]) for r in conn.execute(
            "select rule_id, severity, matures_days from audit.rules")}  # fmt: skip
    rate = {r["measure_id"]: float(r["rate"]) for r in rows if r["period"] == current}
    # the ranking, worked out here from the written measures and the catalogue
    expected = sorted((rid for rid in rate if rules[rid][0] != "info"),
                      key=lambda rid: (_top_severity(rules[rid][0]), -rate[rid]))  # fmt: skip
    errors: list[str] = []
    page = _open(browser, latest / "dashboard.html", errors)
    shown = page.eval_on_selector_all("tr.headline", "rows => rows.map(r => r.dataset.rule)")
    assert [rate[r] for r in shown] == [rate[r] for r in expected]
    assert [_top_severity(rules[r][0]) for r in shown] == sorted(
        _top_severity(rules[r][0]) for r in shown
    )
    # a rule that needs days to confirm is marked maturing in the quarter of as_of
    for rid in shown:
        marked = page.locator(f"tr.headline[data-rule='{rid}'] .maturing").count()
        assert marked == (1 if rules[rid][1] > 0 else 0), rid
    assert any(rules[r][1] > 0 for r in shown)
    # colours: one per rule, none repeated
    colours = page.evaluate("() => document.getElementById('trend').data.map(t => t.line.color)")
    assert len(colours) == 12 and len(set(colours)) == 12
    # the heat map shows its numbers, and a cell lists its quarter's cases only
    cells = page.evaluate("() => document.getElementById('heatmap').data[0].text")
    assert any("/" in c and "%" in c for line in cells for c in line)
    previous = sorted({r["period"] for r in rows})[-2]
    page.select_option("#quarter", previous)
    # the busiest site cell of that quarter is clicked
    page.evaluate("""() => { const g = document.getElementById('heatmap'), z = g.data[0].z;
      let best = [0, 0], top = -1;
      z.forEach((line, y) => line.slice(0, -1).forEach((v, x) => { if (v > top) { top = v; best = [y, x]; } }));
      g.emit('plotly_click', {points: [{pointIndex: best}]}); }""")
    assert page.input_value("#f-quarter") == previous
    year, q = int(previous[:4]), int(previous[-1])
    lo = dt.date(year, 3 * q - 2, 1)
    hi = dt.date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - dt.timedelta(days=1)
    dates = page.locator("#case-table tbody tr td:nth-child(1)").all_inner_texts()
    assert dates, "the cell's quarter has cases"
    assert all(lo <= dt.date.fromisoformat(d) <= hi for d in dates)
    # no date or id breaks at a hyphen: the list's date, rule, patient and site cells
    wraps = page.eval_on_selector_all(
        "#case-table tbody tr:first-child td",
        "tds => [0, 1, 5, 6].map(i => getComputedStyle(tds[i]).whiteSpace)",
    )
    assert wraps == ["nowrap"] * 4
    # printed: the chosen quarter and the filters on the first page, a few pages in all
    pdf = tmp_path / "dashboard.pdf"
    page.emulate_media(media="print")
    page.pdf(path=str(pdf), print_background=True)
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-layout", str(pdf), "-"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"Heat map quarter: {previous}" in first
    assert f"quarter: {previous}" in first.split("Case list:")[1]
    assert "rule:" in first.split("Case list:")[1]
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages")))
    assert 1 < pages <= 6
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) == pages
    assert errors == []
