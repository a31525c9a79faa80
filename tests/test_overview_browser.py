"""The workspace's overview in headless Debian Chromium over a real run
(workspace round 2, findings 8 and 10): a reviewer of one site sees that
site ranked beside all sites, another site's heat-map cell says it is not
theirs and opens nothing, changes are coloured by their direction, no
timestamp shows microseconds, and in print the heat map keeps its caption."""

from __future__ import annotations

import re

import pytest

from audit import users
from audit.web.app import create_app
from tests.live_server import live_server
from tests.test_dashboard import browser  # noqa: F401 - the fixture
from tests.test_overview import PASSWORD, ran  # noqa: F401 - the fixture
from tests.test_security import login  # noqa: F401 - the fixture

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(login, ran):  # noqa: F811
    users.add("olive", "reviewer", ["site-01"], PASSWORD)
    with live_server(create_app(login("rxaudit_web"), secret="overview-browser-secret")) as url:
        yield url


def test_a_site_reviewer_sees_their_site_first_and_changes_by_direction(browser, server):  # noqa: F811
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(f"{server}/login")
    page.fill("input[name=username]", "olive")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{server}/")
    # finding 8: the user's site ranked, beside all sites
    heading = page.get_by_text("At your sites (site-01)")
    assert heading.is_visible()
    mine = page.locator("tr[data-mine-rule]")
    assert mine.count() > 0 and mine.first.is_visible()
    # another site's cell: a title saying so, "not your site", and no link
    other = page.locator("table.heat td[title='site-02: a site you cannot open']").first
    assert other.is_visible() and "not your site" in other.inner_text()
    assert other.locator("a").count() == 0
    own = page.locator("table.heat td a[href*='site=site-01']")
    assert own.count() > 0
    # finding 10: worse and better are told apart by colour, not by sign alone
    colour = "el => getComputedStyle(el).color"
    worse = [page.eval_on_selector(s, colour) for s in ("span.worse",) if page.locator(s).count()]
    better = [page.eval_on_selector(s, colour) for s in ("span.better",) if page.locator(s).count()]
    same = [page.eval_on_selector(s, colour) for s in ("span.same",) if page.locator(s).count()]
    shown = worse + better + same
    assert shown, "no change is shown"
    assert len(set(shown)) == len(shown)  # each direction its own colour
    for text in page.locator("span.worse, span.better").all_inner_texts():
        assert not text.startswith(("+0.0", "-0.0"))
    # no timestamp with microseconds anywhere on the page
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", page.inner_text("body"))
    # in print the heat map and its caption stay on one page
    page.emulate_media(media="print")
    assert page.eval_on_selector("section.heatmap", "el => getComputedStyle(el).breakInside") == (
        "avoid")  # fmt: skip
    page.close()
