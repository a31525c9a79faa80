"""The workspace in headless Debian Chromium: a reviewer of site A signs in,
sees only site A, is refused a site B case by its URL, reviews one with a
note and sees it in the history at once; signed out, nothing is reachable."""

from __future__ import annotations

import pytest

from audit.web.app import create_app
from tests.live_server import live_server
from tests.test_dashboard import browser  # noqa: F401 - the fixture
from tests.test_security import login  # noqa: F401 - the fixture
from tests.test_web import cases  # noqa: F401 - the fixture

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(login, cases):  # noqa: F811
    with live_server(create_app(login("rxaudit_web"), secret="browser-test-secret")) as url:
        yield url


def test_a_reviewer_works_in_the_browser(browser, server, cases):  # noqa: F811
    page = browser.new_page()
    page.goto(f"{server}/cases")
    assert page.url.endswith("/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice-password-1")
    page.click("button[type=submit]")
    page.goto(f"{server}/cases")
    sites = page.locator("table.cases tbody tr td:nth-child(7)").all_inner_texts()
    assert sites and set(sites) == {"site-a"}
    refused = page.goto(f"{server}/cases/{cases['b1']}")
    assert refused.status == 404 and "No such case at your sites" in page.content()
    page.goto(f"{server}/cases/{cases['a1']}")
    page.select_option("select[name=status]", "justified")
    note = "benzodiazepine for a one-off MRI <img src=x onerror=alert(1)>"
    page.fill("textarea[name=note]", note)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("form.review button[type=submit]")
    history = page.locator("table.reviews tbody tr").first.inner_text()
    assert "justified" in history and note in history and "alice" in history
    assert not dialogs and page.locator("table.reviews img").count() == 0
    page.click("form.signout button")
    page.goto(f"{server}/cases/{cases['a1']}")
    assert page.url.endswith("/login")
    page.close()


def _signed_in_page(chromium, server, name):
    from tests.test_web import PASSWORDS

    context = chromium.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(f"{server}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    assert not page.url.endswith("/login"), name
    return page


def _review(page, server, case_id, status, note):
    page.goto(f"{server}/cases/{case_id}")
    page.select_option("select[name=status]", status)
    page.fill("textarea[name=note]", note)
    page.click("form.review button[type=submit]")


def test_a_team_disagrees_a_lead_settles_exports_and_an_auditor_traces(browser, server, cases):  # noqa: F811
    import csv
    import io

    alice = _signed_in_page(browser, server, "alice")
    amir = _signed_in_page(browser, server, "amir")
    lena = _signed_in_page(browser, server, "lena")
    _review(alice, server, cases["a1"], "confirmed", "long-term alprazolam, no exception")
    _review(amir, server, cases["a1"], "false_positive", "dispensed in error")
    conflict = amir.locator("p.conflict").inner_text()
    assert "alice confirmed" in conflict and "amir false_positive" in conflict
    # the lead assigns the case to a reviewer of its site, then settles it
    lena.goto(f"{server}/cases/{cases['a1']}")
    lena.select_option("form.assign select[name=assignee]", "alice")
    lena.click("form.assign button[type=submit]")
    assert "Assigned to alice by lena on " in lena.content()
    _review(lena, server, cases["a1"], "confirmed", "reviewed with the prescriber: confirmed")
    assert lena.locator("p.conflict").count() == 0
    alice.goto(f"{server}/cases?queue=mine")
    assert alice.locator(f"a[href='/cases/{cases['a1']}']").count() == 1
    # the exported CSV is exactly the filtered list
    alice.goto(f"{server}/cases?rule=BZD-PTSD&status=open&review=confirmed")
    shown = alice.eval_on_selector_all(
        "table.cases tbody tr td:nth-child(6) a", "links => links.map(a => a.getAttribute('href'))"
    )
    with alice.expect_download() as got:
        alice.click("text=Export CSV")
    rows = list(csv.DictReader(io.StringIO(open(got.value.path(), encoding="utf-8").read())))
    assert [f"/cases/{r['case_id']}" for r in rows] == shown == [f"/cases/{cases['a1']}"]
    assert {r["site_id"] for r in rows} == {"site-a"}
    # a drug name holding <script> is shown as text (the timeline's label)
    alice.goto(f"{server}/cases/{cases['a1']}")
    assert "<script>alert(1)</script>" in alice.locator("svg.timeline").text_content()
    assert alice.locator("svg.timeline script, main script").count() == 0
    # a form whose CSRF token was taken out is refused
    alice.evaluate("() => document.querySelector('form.review input[name=csrf_token]').remove()")
    alice.select_option("select[name=status]", "confirmed")
    alice.fill("textarea[name=note]", "no token")
    alice.click("form.review button[type=submit]")
    assert "not accepted" in alice.content()
    # the auditor traces the case to its source rows and sees the views logged
    audrey = _signed_in_page(browser, server, "audrey")
    audrey.goto(f"{server}/cases/{cases['a1']}")
    source = audrey.locator("table.sources tbody tr").first.inner_text()
    assert "prescriptions.csv" in source
    audrey.click("table.sources tbody tr a")  # the batch of the row
    assert "Records it added and replaced" in audrey.content()
    audrey.goto(f"{server}/access-log")
    log = audrey.locator("table").inner_text()
    for who in ("alice", "amir", "lena"):
        assert who in log
    assert "export" in log and "case page" in log
