"""The workspace in headless Debian Chromium: a reviewer of site A signs in,
sees only site A, is refused a site B case by its URL, reviews one with a
note and sees it in the history at once; signed out, nothing is reachable."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from audit.web.app import create_app
from tests.test_dashboard import browser  # noqa: F401 - the fixture
from tests.test_security import login  # noqa: F401 - the fixture
from tests.test_web import cases  # noqa: F401 - the fixture

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(login, cases):  # noqa: F811
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(login("rxaudit_web"), secret="browser-test-secret"),
                            host="127.0.0.1", port=port, log_level="warning")  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


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
