"""The workspace (`rxaudit serve`) through HTTP, as the web role: sign-in,
CSRF, site-level access, reviews and conflicts, the CSV export, the access
log, escaping. The browser-level tests drive the same app in Chromium."""

from __future__ import annotations

import csv
import io
import re

import pytest
from starlette.testclient import TestClient

from audit import users
from audit.web.app import SIGN_IN_ATTEMPTS, create_app
from tests.rulekit import World, evaluate
from tests.test_security import login  # noqa: F401 - the fixture

pytestmark = pytest.mark.db
PASSWORDS = {"alice": "alice-password-1", "amir": "amir-password-22", "lena": "lena-password-333",
             "bob": "bob-password-4444", "audrey": "audrey-password-5"}  # fmt: skip


@pytest.fixture
def cases(conn, tmp_path, db_url):
    w = World()
    w.patient("a1", ptsd_on="2025-01-01", site="site-a").fill(
        "alprazolam", "2025-02-01", 30, name="Xanax <script>alert(1)</script> 1 mg"
    )
    w.patient("a2", ptsd_on="2025-01-01", site="site-a").fill("lorazepam", "2025-03-01", 30)
    w.patient("b1", ptsd_on="2025-01-01", site="site-b").fill("alprazolam", "2025-02-01", 30)
    w.load(conn, tmp_path)
    found = {c["patient_id"]: c["case_id"] for c in evaluate(conn) if c["rule_id"] == "BZD-PTSD"}
    conn.commit()
    for name, role, sites in (("alice", "reviewer", ["site-a"]), ("amir", "reviewer", ["site-a"]),
                              ("lena", "lead", ["site-a"]), ("bob", "reviewer", ["site-b"]),
                              ("audrey", "auditor", [])):  # fmt: skip
        users.add(name, role, sites, PASSWORDS[name])
    return found


@pytest.fixture
def client(login, cases):  # noqa: F811
    app = create_app(login("rxaudit_web"), secret="a-test-secret")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, name: str, password: str | None = None):
    form = client.get("/login")
    assert 'name="username"' in form.text and 'name="password"' in form.text
    return client.post("/login", data={"username": name, "password": password or PASSWORDS[name],
                                       "csrf_token": _csrf(form.text)}, follow_redirects=False)  # fmt: skip


def test_signed_out_users_reach_nothing_patient_level(client, cases):
    for path in ("/", "/cases", "/cases.csv", f"/cases/{cases['a1']}", "/access-log"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    r = client.post(f"/cases/{cases['a1']}/reviews", data={"status": "confirmed", "note": "x"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_a_form_without_its_csrf_token_is_refused(client, cases):
    r = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert r.status_code == 403
    assert sign_in(client, "alice").status_code == 303
    r = client.post(f"/cases/{cases['a1']}/reviews", data={"status": "confirmed", "note": "x"})
    assert r.status_code == 403
    r = client.post(f"/cases/{cases['a1']}/reviews",
                    data={"status": "confirmed", "note": "x", "csrf_token": "forged"})  # fmt: skip
    assert r.status_code == 403
    assert "Not reviewed yet" in client.get(f"/cases/{cases['a1']}").text


def test_a_reviewer_sees_only_their_site_and_reviews_with_a_note(client, cases):
    assert sign_in(client, "alice").status_code == 303
    listing = client.get("/cases").text
    assert "site-a" in listing and "site-b" not in listing
    assert client.get(f"/cases/{cases['b1']}").status_code == 404
    page = client.get(f"/cases/{cases['a1']}")
    assert page.status_code == 200
    r = client.post(f"/cases/{cases['a1']}/reviews", data={
        "status": "false_positive",
        "note": "taken <b>once</b> before an MRI <script>alert(1)</script><img src=x onerror=alert(2)>",
        "csrf_token": _csrf(page.text)}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    history = client.get(f"/cases/{cases['a1']}").text
    assert "false_positive" in history and "taken &lt;b&gt;once&lt;/b&gt; before an MRI" in history
    assert "alice" in history
    # a note holding a script or an onerror attribute is text, never markup
    assert "<script>" not in history and "&lt;script&gt;alert(1)&lt;/script&gt;" in history
    assert "<img" not in history and "&lt;img src=x onerror=alert(2)&gt;" in history
    assert r.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_disagreement_shows_as_a_conflict_until_a_lead_settles_it(client, cases):
    def review(name: str, status: str) -> None:
        client.cookies.clear()
        assert sign_in(client, name).status_code == 303
        page = client.get(f"/cases/{cases['a2']}")
        client.post(f"/cases/{cases['a2']}/reviews",
                    data={"status": status, "note": f"{name} says {status}",
                          "csrf_token": _csrf(page.text)})  # fmt: skip

    review("alice", "confirmed")
    review("amir", "false_positive")
    assert "Conflict: the latest reviews disagree (alice confirmed, amir false_positive)" in (
        client.get(f"/cases/{cases['a2']}").text
    )
    review("lena", "confirmed")
    assert "Conflict" not in client.get(f"/cases/{cases['a2']}").text


def test_the_csv_export_is_exactly_the_filtered_list(client, cases):
    sign_in(client, "audrey")
    page = client.get("/cases?site=site-a&status=open").text
    listed = set(re.findall(r'href="/cases/(C[0-9a-f]+)"', page))
    exported = client.get("/cases.csv?site=site-a&status=open")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["case_id"] for r in rows} == listed and listed
    assert all(r["site_id"] == "site-a" for r in rows)
    assert exported.headers["content-type"].startswith("text/csv")


def test_an_auditor_reads_the_access_log_those_views_wrote(client, cases):
    sign_in(client, "bob")
    client.get(f"/cases/{cases['b1']}")
    client.get(f"/cases/{cases['a1']}")  # refused, and logged
    client.cookies.clear()
    sign_in(client, "audrey")
    log = client.get("/access-log").text
    assert "bob" in log and "case page" in log and "case page refused" in log
    assert cases["b1"] in log


def test_sign_in_attempts_are_rate_limited(client, cases):
    for _ in range(SIGN_IN_ATTEMPTS):
        assert sign_in(client, "alice", "wrong-password-x").status_code == 401
    assert sign_in(client, "alice").status_code == 429


def test_sign_out_ends_the_session(client, cases):
    sign_in(client, "alice")
    page = client.get("/")
    assert client.post("/logout", data={"csrf_token": _csrf(page.text)},
                       follow_redirects=False).status_code == 303  # fmt: skip
    assert client.get("/cases", follow_redirects=False).status_code == 303


def test_a_lead_assigns_and_the_reviewer_finds_it_in_their_queue(client, cases):
    sign_in(client, "lena")
    page = client.get(f"/cases/{cases['a2']}")
    assert 'action="/cases/' in page.text and "Assign to" in page.text
    r = client.post(f"/cases/{cases['a2']}/assignments",
                    data={"assignee": "amir", "csrf_token": _csrf(page.text)},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert "Assigned to amir by lena on " in client.get(f"/cases/{cases['a2']}").text
    client.cookies.clear()
    sign_in(client, "amir")
    queue = client.get("/cases?queue=mine").text
    assert "My queue" in queue
    assert set(re.findall(r'href="/cases/(C[0-9a-f]+)"', queue)) == {cases["a2"]}
    page = client.get(f"/cases/{cases['a2']}")
    assert "Assign to" not in page.text
    r = client.post(f"/cases/{cases['a2']}/assignments",
                    data={"assignee": "amir", "csrf_token": _csrf(page.text)})  # fmt: skip
    assert r.status_code == 403


def test_filters_by_prescriber_severity_and_date(client, cases):
    sign_in(client, "audrey")
    everything = client.get("/cases.csv").text
    rows = list(csv.DictReader(io.StringIO(everything)))
    assert len(rows) >= 3
    some = rows[0]
    by_date = list(csv.DictReader(io.StringIO(client.get(
        f"/cases.csv?from={some['case_date']}&to={some['case_date']}").text)))  # fmt: skip
    assert by_date and {r["case_date"] for r in by_date} == {some["case_date"]}
    high = list(csv.DictReader(io.StringIO(client.get("/cases.csv?severity=high").text)))
    assert {r["severity"] for r in high} <= {"high"}
    with_dr = [r for r in rows if r["prescriber_id"]]
    assert with_dr
    dr = with_dr[0]["prescriber_id"]
    mine = list(csv.DictReader(io.StringIO(client.get(f"/cases.csv?prescriber={dr}").text)))
    assert mine and {r["prescriber_id"] for r in mine} == {dr}


def test_an_auditor_traces_a_case_to_its_source_rows(client, cases, conn):
    sign_in(client, "audrey")
    page = client.get(f"/cases/{cases['a1']}").text
    rx_id, batch_id, line = conn.execute(
        "select rx.rx_id, b.batch_id, rx.line_no from core.prescriptions as rx"
        " join audit.batches as b using (batch_no) where rx.patient_id = 'a1' and rx.is_current"
    ).fetchone()
    row = re.search(r"<tr><td[^>]*>prescriptions\.csv</td><td[^>]*>([^<]+)</td><td[^>]*>"
                    r'<a href="/batches/[^"]+">([^<]+)</a></td><td[^>]*>(\d+)</td>', page)  # fmt: skip
    assert row and row.groups() == (rx_id, batch_id, str(line))
    policy = conn.execute("select policy_sha256 from audit.runs limit 1").fetchone()[0]
    assert policy in page and "(first seen)" in page


def test_single_sign_on_trusts_the_proxy_header_only_when_configured_and_from_the_proxy(
    login,  # noqa: F811
    cases,
    monkeypatch,
):
    def get(app, path, **headers):
        with TestClient(app, base_url="http://127.0.0.1") as c:
            return c, c.get(path, headers=headers, follow_redirects=False)

    # off by default: the header is ignored
    _, r = get(create_app(login("rxaudit_web"), secret="s"), "/", **{"X-Remote-User": "alice"})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    # on, but the request does not come from a trusted proxy address
    app = create_app(login("rxaudit_web"), secret="s", proxy_header="X-Remote-User")
    _, r = get(app, "/", **{"X-Remote-User": "alice"})
    assert r.status_code == 303
    # on, from the proxy (the test client's address): signed in as that user, her
    # sites only; the web login holds rxaudit_web_sso (the administrator's grant)
    monkeypatch.setenv("RXAUDIT_WEB_TRUSTED_PROXIES", "testclient")
    app = create_app(login("rxaudit_web_sso"), secret="s", proxy_header="X-Remote-User")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.get("/cases", headers={"X-Remote-User": "alice"})
        assert r.status_code == 200 and "alice (reviewer: site-a)" in r.text
        assert "rxaudit_session" in c.cookies
        assert c.get(f"/cases/{cases['b1']}", headers={"X-Remote-User": "alice"}).status_code == 404
        # the session follows the header: another user named by the proxy is another session
        r = c.get("/cases", headers={"X-Remote-User": "bob"})
        assert "bob (reviewer: site-b)" in r.text and cases["a1"] not in r.text
    # an unknown or disabled account named by the proxy reaches nothing
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.get("/", headers={"X-Remote-User": "mallory"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"


def test_an_auditor_reads_a_batch_its_quality_quarantine_and_replacements(client, cases, conn):
    batch_id = conn.execute("select batch_id from audit.batches order by batch_no limit 1"
                            ).fetchone()[0]  # fmt: skip
    sign_in(client, "alice")
    assert client.get("/batches").status_code == 403
    assert client.get(f"/batches/{batch_id}").status_code == 403
    client.cookies.clear()
    sign_in(client, "audrey")
    listing = client.get("/batches").text
    assert f'href="/batches/{batch_id}"' in listing
    page = client.get(f"/batches/{batch_id}").text
    added = {r["file"]: r["added"] for r in conn.execute(
        "select replacements from audit.batches where batch_id = %s", (batch_id,)).fetchone()[0]}  # fmt: skip
    for file, n in added.items():
        assert re.search(rf'<td class="nowrap">{re.escape(file)}</td><td class="n">{n}</td>', page)
    assert "Quarantine" in page and "Validation (Great Expectations)" in page
    assert client.get("/batches/no-such-batch").status_code == 404


def test_nul_bytes_and_long_notes_are_refused_not_a_server_error(client, cases):
    """Hardening 3, finding 9: a NUL byte in the address or a form answers
    400/401/403, never 500; a note above 4,000 characters is not stored;
    the framework's 404 and 405 carry the security headers."""
    for path in ("/cases?rule=%00", "/cases/C%00", "/batches/%00x"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 400, path
        assert r.headers["x-frame-options"] == "DENY"
    form = client.get("/login")
    r = client.post("/login", data={"username": "ali\x00ce", "password": "x",
                                    "csrf_token": _csrf(form.text)}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 401
    assert sign_in(client, "alice").status_code == 303
    page = client.get(f"/cases/{cases['a1']}")
    token = _csrf(page.text)
    url = f"/cases/{cases['a1']}/reviews"
    r = client.post(url, data={"status": "confirmed", "note": "x" * 4001, "csrf_token": token},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 400 and "at most 4,000 characters" in r.text
    r = client.post(url, data={"status": "confirmed", "note": "a\x00b", "csrf_token": token},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert "x" * 4001 not in client.get(f"/cases/{cases['a1']}").text
    for r in (client.get("/no-such-page"), client.put("/cases")):
        assert r.status_code in (404, 405)
        assert r.headers["content-security-policy"].startswith("default-src 'none'")


def test_large_forms_and_uploads_are_refused_before_they_are_read(client, cases):
    """Hardening 3, finding 5: the body is read only up to the largest form's
    size, with a bounded number of fields; no endpoint takes a file."""
    form = client.get("/login")
    token = _csrf(form.text)
    big = {f"f{i}": "x" * (1 << 20) for i in range(3)}
    r = client.post("/login", data={**big, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 413 and r.headers["x-frame-options"] == "DENY"
    many = {f"f{i}": "x" for i in range(100)}
    r = client.post("/login", data={**many, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 413
    r = client.post("/login", files={"upload": ("a.csv", b"x" * (1 << 20))},
                    data={"csrf_token": token}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 415
    # a form of the workspace's own size still works
    assert sign_in(client, "alice").status_code == 303


def test_password_hashes_at_once_are_bounded(login, cases, monkeypatch):  # noqa: F811
    """Hardening 3, finding 4: argon2id takes 64 MiB an attempt; sign-ins
    beyond the bound wait a little, then are refused (503), never all at once."""
    import threading
    import time

    from audit.web import session

    monkeypatch.setattr(session, "SIGN_IN_CONCURRENCY", 2)
    monkeypatch.setattr(session, "SIGN_IN_WAIT_S", 0.3)
    inside, peak, lock = [0], [0], threading.Lock()
    real = users.sign_in

    def slow(*args, **kwargs):
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(1.0)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(users, "sign_in", slow)
    app = create_app(login("rxaudit_web"), secret="a-test-secret")
    codes: list[int] = []

    def attempt(i: int) -> None:
        with TestClient(app, base_url="http://127.0.0.1") as c:
            form = c.get("/login")
            r = c.post("/login", data={"username": f"nobody{i}", "password": "x",
                                       "csrf_token": _csrf(form.text)}, follow_redirects=False)  # fmt: skip
            with lock:
                codes.append(r.status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] <= 2
    assert sorted(set(codes)) == [401, 503] and codes.count(503) >= 4


def test_forwarded_headers_are_believed_from_the_trusted_proxies_only(monkeypatch):
    """Hardening 3, finding 8: one setting (RXAUDIT_WEB_TRUSTED_PROXIES) for
    single sign-on and for uvicorn's forwarded headers (X-Forwarded-Proto)."""
    from audit.web.app import server_options

    monkeypatch.setenv("RXAUDIT_WEB_TRUSTED_PROXIES", "10.0.0.5, 10.0.0.6")
    options = server_options("0.0.0.0", 8000)
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == "10.0.0.5,10.0.0.6"
    monkeypatch.delenv("RXAUDIT_WEB_TRUSTED_PROXIES")
    assert server_options("127.0.0.1", 8000)["forwarded_allow_ips"] == "127.0.0.1"


def test_a_conflict_is_not_a_verdict_until_a_lead_settles_it(client, cases, conn):
    """Workspace round 2, finding 1: reviews that disagree leave the case in
    the after-review numerator, show as a conflict in the worklist, its
    filter and the export; a lead's disagreement is a conflict too; a lead's
    review once the conflict is there settles it."""

    def review(name: str, status: str) -> None:
        client.cookies.clear()
        sign_in(client, name)
        page = client.get(f"/cases/{cases['a1']}")
        r = client.post(f"/cases/{cases['a1']}/reviews", data={
            "status": status, "note": f"{name} says {status}", "csrf_token": _csrf(page.text)},
            follow_redirects=False)  # fmt: skip
        assert r.status_code == 303

    def after_review() -> int:
        return conn.execute(
            "select count(*) filter (where coalesce(review.disposition(case_id), '')"
            " not in ('false_positive', 'justified')) from audit.cases where case_id = %s",
            (cases["a1"],),
        ).fetchone()[0]

    review("alice", "confirmed")
    review("lena", "false_positive")  # the lead disagrees: a conflict, not a verdict
    assert after_review() == 1
    page = client.get(f"/cases/{cases['a1']}").text
    assert "Conflict: the latest reviews disagree (alice confirmed, lena false_positive)" in page
    listed = client.get("/cases?review=conflict").text
    assert set(re.findall(r'href="/cases/(C[0-9a-f]+)"', listed)) == {cases["a1"]}
    rows = list(csv.DictReader(io.StringIO(client.get("/cases.csv?review=conflict").text)))
    assert [(r["case_id"], r["review_status"], r["review_conflict"]) for r in rows] == [
        (cases["a1"], "conflict", "True")]  # fmt: skip
    review("lena", "false_positive")  # the lead settles the conflict now shown
    assert after_review() == 0
    assert "Conflict:" not in client.get(f"/cases/{cases['a1']}").text
    assert client.get("/cases?review=conflict").text.count('href="/cases/C') == 0


def test_auditors_read_and_are_never_assigned(client, cases, conn):
    """Workspace round 2, finding 2: an auditor's review is refused (and
    recorded); only the site's reviewers and leads can be assigned, as a choice."""
    sign_in(client, "audrey")
    page = client.get(f"/cases/{cases['b1']}")
    assert "Record review" not in page.text
    form = client.get("/login")  # any page gives the session's token
    token = _csrf(page.text) if 'name="csrf_token"' in page.text else _csrf(form.text)
    r = client.post(f"/cases/{cases['b1']}/reviews", data={
        "status": "false_positive", "note": "from the audit office", "csrf_token": token},
        follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert conn.execute("select count(*) from review.reviews").fetchone() == (0,)
    assert conn.execute(
        "select count(*) from review.access_log where what = 'review refused'"
    ).fetchone() == (1,)
    client.cookies.clear()
    sign_in(client, "lena")
    page = client.get(f"/cases/{cases['a2']}").text
    choices = re.findall(
        r'<option value="([a-z]+)">', page.split('name="assignee"')[1].split("</select>")[0]
    )
    assert choices == ["alice", "amir", "lena"]  # site-a's reviewers and lead, no auditor
    r = client.post(f"/cases/{cases['a2']}/assignments",
                    data={"assignee": "audrey", "csrf_token": _csrf(page)}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 404


def test_a_hurried_submit_confirms_nothing_and_long_notes_wrap(client, cases):
    """Workspace round 2, finding 3: no disposition is chosen for the reviewer."""
    sign_in(client, "alice")
    page = client.get(f"/cases/{cases['a1']}").text
    form = page.split('class="review"')[1].split("</form>")[0]
    assert '<option value="" selected disabled>' in form
    assert "selected" not in form.replace('<option value="" selected disabled>', "")
    r = client.post(f"/cases/{cases['a1']}/reviews",
                    data={"note": "quick", "csrf_token": _csrf(page)}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 400
    assert "overflow-wrap: anywhere" in client.get("/static/web.css").text


def test_the_access_log_is_paged_filtered_exported_and_records_refusals(client, cases, conn):
    """Workspace round 2, finding 6: every row reachable (paged in
    PostgreSQL), filtered by user, case, site, kind and date, the filtered
    rows exported; refused attempts are rows too."""
    sign_in(client, "bob")  # site-b: refused on site-a's case and the auditors' pages
    page = client.get(f"/cases/{cases['b1']}")
    r = client.post(f"/cases/{cases['a1']}/reviews", data={
        "status": "confirmed", "note": "not mine", "csrf_token": _csrf(page.text)},
        follow_redirects=False)  # fmt: skip
    assert r.status_code == 404
    assert client.get("/access-log").status_code == 403
    assert client.get("/batches").status_code == 403
    for _ in range(250):
        client.get(f"/cases/{cases['b1']}")
    client.cookies.clear()
    client.get("/login")
    sign_in(client, "bob", "a wrong password")
    client.cookies.clear()
    sign_in(client, "audrey")
    first = client.get("/access-log?user=bob").text
    assert "page 1 of 2" in first and "older</a>" in first
    total = conn.execute(
        "select count(*) from review.access_log where user_name = 'bob'"
    ).fetchone()[0]
    assert f"{total} row(s)" in first
    kinds = {r[0] for r in conn.execute("select what from review.access_log")}
    assert {"review refused (not found)", "access log refused", "batches refused",
            "failed sign-in"} <= kinds  # fmt: skip
    older = client.get("/access-log?user=bob&page=2").text
    assert older.count("<tr><td") == total - 200
    one = client.get(f"/access-log?case={cases['a1']}&kind=review+refused+%28not+found%29").text
    assert "1 row(s)" in one and "site-a" in one
    rows = list(
        csv.DictReader(io.StringIO(client.get("/access-log.csv?user=BOB&kind=case+page").text))
    )
    assert len(rows) == 251 and {r["what"] for r in rows} == {"case page"}
    assert {r["site_id"] for r in rows} == {"site-b"}
    bad = client.get("/access-log?from=2026-02-30").text
    assert "must be a date YYYY-MM-DD: that filter was not applied" in bad
    assert client.get("/access-log.csv?from=2026-05-01&to=2026-01-01").status_code == 400


def test_filters_are_choices_and_wrong_ones_are_said(client, cases):
    """Workspace round 2, finding 11: rule and site are choices from the data,
    typed values match whatever their case; a wrong quarter, a 'from' after
    'to' or an unknown queue is said, and the export refuses it."""
    sign_in(client, "alice")
    page = client.get("/cases").text
    assert '<select name="rule"><option value="">any</option><option value="BZD-PTSD">' in page
    assert '<option value="site-a">' in page and '<option value="site-b">' not in page
    lower = client.get("/cases?rule=bzd-ptsd&site=SITE-A").text
    assert set(re.findall(r'href="/cases/(C[0-9a-f]+)"', lower)) == {cases["a1"], cases["a2"]}
    for query, said in (("quarter=2025-5", "a quarter looks like 2025-Q4"),
                        ("from=2025-06-01&to=2025-01-01", "&#39;from&#39; is after &#39;to&#39;"),
                        ("queue=everyone", "queue must be one of mine"),
                        ("site=site-b", "no case of site &#39;site-b&#39; at your sites")):  # fmt: skip
        text = client.get(f"/cases?{query}").text
        assert said in text and "that filter was not applied" in text, query
        assert client.get(f"/cases.csv?{query}").status_code == 400, query
