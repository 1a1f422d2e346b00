"""Browser login end to end: gunicorn workers sharing memcached, the test provider over
HTTP, and a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time

import pytest
import requests

from tests.support.browser_login import (
    ENV, NAV, ROUTES, SCRIPT, e2e_config, http_sign_in, make_idp,
)
from tests.support.processes import GatewayProcess, Memcached

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def started(tmp_path):
    """started(idp, memcached=..., options=..., workers=...) → a running GatewayProcess."""
    running = []

    def start(idp_factory, *, memcached: str | None, options: dict | None = None, workers: int = 2):
        path = tmp_path / f"gw{len(running)}.yaml"
        process = GatewayProcess(path, workers=workers, env=ENV)
        public = process.url
        idp = idp_factory(public)
        path.write_text(e2e_config(idp, public, memcached=memcached, options=options))
        running.append(process)
        process.start()
        return process, idp

    yield start
    for process in running:
        process.stop()


@pytest.fixture
def idps():
    made = []

    def make(public: str):
        idp = make_idp(public=public)
        made.append(idp)
        return idp
    yield make
    for idp in made:
        idp.stop()


def test_one_refresh_for_concurrent_requests_across_workers(started, idps, memcached):
    gw, idp = started(idps, memcached=memcached.address, workers=3,
                      options={"refresh_lead": "58s"})
    idp.token_ttl = 60
    http = http_sign_in(gw.url)
    idp.login.refresh_delay = 0.5  # a slow token endpoint widens the race
    time.sleep(2.5)  # the access token is now inside the refresh lead
    statuses, barrier = [], threading.Barrier(16)

    def hit():
        barrier.wait()
        r = requests.get(gw.url + "/app/data", headers=SCRIPT, cookies=http.cookies, timeout=10)
        statuses.append(r.status_code)
    threads = [threading.Thread(target=hit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 16
    assert idp.login.counts["refresh"] == 1 and idp.login.counts["refresh_reused"] == 0
    time.sleep(1.1)  # every worker's copy has expired
    for _ in range(6):
        assert requests.get(gw.url + "/app/data", headers=SCRIPT, cookies=http.cookies,
                            timeout=5).status_code == 200
    assert idp.login.counts["refresh"] == 1


def test_store_down_is_a_503_page_never_a_redirect_loop(started, idps):
    memcached = Memcached().start()
    try:
        gw, idp = started(idps, memcached=memcached.address)
        http = http_sign_in(gw.url)
        memcached.freeze()
        page = http.get(gw.url + "/app/page", headers=NAV, allow_redirects=False, timeout=5)
        assert page.status_code == 503 and "Location" not in page.headers
        assert page.headers["Content-Type"].startswith("text/html")
        script = http.get(gw.url + "/app/page", headers=SCRIPT, allow_redirects=False, timeout=5)
        assert script.status_code == 503
        assert script.headers["Content-Type"] == "application/problem+json"
        fresh = requests.get(gw.url + "/app/page", headers=NAV, allow_redirects=False, timeout=5)
        assert fresh.status_code == 503 and "Location" not in fresh.headers  # no trip to the IdP
        ready = requests.get(gw.url + "/.gateway/ready", timeout=5)
        assert ready.status_code == 503 and "store unavailable" in ready.json()["reasons"]
        memcached.resume()
        deadline = time.monotonic() + 5  # the store's breaker probes again after retry_after
        while http.get(gw.url + "/app/page", headers=SCRIPT, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the session did not come back with the store"
            time.sleep(0.2)
    finally:
        memcached.resume()
        memcached.stop()


def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
        print(f"\nSKIP the real-browser test: {reason}")
        pytest.skip(reason)
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (apt-get install chromium; contrib/run.sh test does)"
        print(f"\nSKIP the real-browser test: {reason}")
        pytest.skip(reason)
    return sync_playwright


def test_a_real_browser_signs_in_refreshes_and_signs_out(started, idps, memcached):
    sync_playwright = _browser()
    gw, idp = started(idps, memcached=memcached.address, options={"refresh_lead": "1s"})
    idp.token_ttl = 5
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = context.new_page()
            began = time.perf_counter()
            page.goto(gw.url + "/app/reports?month=11")
            assert page.url.startswith(idp.url("/authorize"))
            page.fill("#username", "alice")
            page.fill("#password", "alice-password")
            page.click("#signin")
            page.wait_for_url(gw.url + "/app/reports?month=11")
            round_trip = time.perf_counter() - began
            body = page.evaluate("() => JSON.parse(document.body.innerText)")
            assert body["path"] == "/app/reports" and body["gateway"]["identity"] == "gw-browser:alice"
            assert "Cookie" not in body["headers"] or "gw-session" not in body["headers"]["Cookie"]
            cookie = next(c for c in context.cookies() if c["name"] == "gw-session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
            # a script in the page cannot read the handle, and a fetch() gets 401 once signed out
            assert "gw-session" not in page.evaluate("() => document.cookie")
            time.sleep(5.5)  # the access token has expired
            page.reload()
            assert page.evaluate("() => JSON.parse(document.body.innerText)")["gateway"]["identity"] \
                == "gw-browser:alice"
            assert idp.login.counts["refresh"] >= 1  # exactly one per expiry: the concurrency test
            page.goto(gw.url + ROUTES + "logout")
            page.wait_for_url(gw.url + ROUTES + "logged-out")
            assert "Signed out" in page.content() and idp.login.counts["end_session"] == 1
            status = page.evaluate("async (u) => (await fetch(u)).status", gw.url + "/app/data")
            assert status == 401
            context.close()
        time.sleep(1.1)  # a worker's copy of a session lives at most cache_ttl (1 s)
        old = requests.get(gw.url + "/app/data", headers=SCRIPT, timeout=5,
                           cookies={"gw-session": cookie["value"]})
        assert old.status_code == 401  # the old cookie is dead on every worker
        print(f"\nlogin round trip in chromium: {round_trip * 1000:.0f} ms")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
