"""The web space in a real browser (Playwright driving Debian's chromium, no download):
a user accepts the invitation, sets a web password, turns on TOTP, signs in with it, sends
a fax by mail through the real SMTP listener, watches it reach "delivered to all" on the
Sent page, opens the job from the notice's link, and cancels a deferred job.

The pages are served by uvicorn on a free port (the ASGI app of the running daemon).
Screenshots at 1280 and 375 px go to a temporary directory (printed), never committed;
the step timings are printed, never asserted.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from mailgw.http.asgi import build
from tests.conftest import PASSWORD, SENDER, RunningApp, Sink, free_port, need, wait_until
from tests.webspace import WEB_PASSWORD, deferred_when, invite, send_fax

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(tempfile.gettempdir()) / "mailgw-web-shots"
NOTICE_LINK = re.compile(r"https?://\S+/jobs/\d+")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[test]')")
uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
def served(make_app) -> Iterator[tuple[RunningApp, str]]:
    """The daemon with its web space on uvicorn, on a free port of 127.0.0.1."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(notify={"base_url": base})
    app.add_account()
    assert app.app is not None
    server = uvicorn.Server(uvicorn.Config(build(app.app), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to listen")
    yield app, base
    server.should_exit = True
    thread.join(10)


class Walk:
    """The steps of the walk with their times, and screenshots of each page at two widths."""

    def __init__(self, page: Any):
        self.page = page
        self.times: list[tuple[str, float]] = []
        self.started = time.monotonic()
        SHOTS.mkdir(exist_ok=True)

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.times.append((name, now - self.started))
        self.started = now

    def shoot(self, name: str) -> None:
        for width in (1280, 375):
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
            if width == 375:  # one column on a phone: nothing wider than the screen
                wide = self.page.evaluate("document.documentElement.scrollWidth")
                assert wide <= 375, f"{name} is {wide} px wide at 375 px"
        self.page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(page: Any, email: str = SENDER) -> None:
    page.fill("#email", email)
    page.fill("#password", WEB_PASSWORD)
    page.click("button[type=submit]")


def notice_link(sink: Sink, job_id: int) -> str:
    def found() -> str | None:
        for m in sink.kinds("notice"):
            if m["X-Mailgw-Job"] == str(job_id):
                body = m.get_body(("plain",))
                hit = NOTICE_LINK.search(body.get_content() if body is not None else "")
                if hit:
                    return hit.group(0)
        return None
    sink.wait_for(lambda _: found() is not None, what=f"the notice of job {job_id}")
    link = found()
    assert link is not None
    return link


def test_a_user_walks_through_the_web_space(served, sink: Sink, corpus: Path) -> None:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium); "
                            "the browser tests drive Debian's chromium")
    app, base = served
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900},
                                    locale="en-GB")
            walk = Walk(page)
            # 1. the invitation: set the web password
            link = invite(app, sink)
            page.goto(link)
            walk.shoot("invite")
            page.fill("#password", WEB_PASSWORD)
            page.fill("#confirm", WEB_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/login?done=set")
            walk.shoot("login")
            walk.step("invitation accepted, web password set")
            # 2. sign in, turn the second factor on
            sign_in(page)
            page.wait_for_url(f"{base}/sent")
            page.goto(f"{base}/security")
            page.click("#totp-start")
            secret = page.inner_text("#totp-secret")
            totp = pyotp.TOTP(secret)
            page.fill("#on-code", totp.now())
            page.click("form[action='/security/totp'] button[type=submit]")
            codes = page.locator("#recovery-codes li").all_inner_texts()
            assert len(codes) == 10
            walk.shoot("security")
            walk.step("TOTP on, recovery codes shown")
            # 3. log out, sign in again with the password and a TOTP code
            page.click("header form[action='/logout'] button")
            page.wait_for_url(f"{base}/login")
            sign_in(page)
            page.wait_for_url(re.compile(r".*/login/totp.*"))
            walk.shoot("totp")
            page.fill("#code", totp.at(time.time() + 30))  # the next step: codes are used once
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/sent")
            walk.step("signed in with TOTP")
            # 4. a fax by mail, through the real SMTP listener; delivered on the Sent page
            send_fax(app.port, f"{PASSWORD}:0170709901:INV-7:relance client A", pdf)
            row = page.locator("tr[data-outcome='delivered_all']")
            deadline = time.monotonic() + 60
            while row.count() == 0:  # the page has no script: the user reloads it
                assert time.monotonic() < deadline, "the fax never showed as delivered"
                page.reload()
            job_id = int(row.first.get_attribute("data-job") or 0)
            assert "Delivered to all" in row.first.inner_text()
            walk.shoot("sent")
            walk.step("fax sent by mail, delivered on Sent")
            # 5. the notice's link, in a browser that is not signed in: sign-in, then the job
            link = notice_link(sink, job_id)
            assert link == f"{base}/jobs/{job_id}"
            other = browser.new_page(viewport={"width": 1280, "height": 900})
            other.goto(link)
            other.wait_for_url(re.compile(r".*/login\?next=.*"))
            sign_in(other)
            other.wait_for_url(re.compile(r".*/login/totp.*"))
            other.fill("#code", codes[0].strip())  # a recovery code (the TOTP step is spent)
            other.click("button[type=submit]")
            other.wait_for_url(link)
            assert "Delivered" in other.inner_text("tr.delivery")
            assert other.locator("tr.delivery td").nth(2).inner_text().strip()  # the CSID
            Walk(other).shoot("job")
            other.close()
            walk.step("notice link opened the job after sign-in")
            # 6. a deferred fax, cancelled from its page
            send_fax(app.port, f"{PASSWORD}:0170709902:LATER:{deferred_when()}", pdf)
            page.goto(f"{base}/sent?state=in_progress")
            deferred = page.locator("tr[data-outcome='in_progress'] a").first
            deferred.click()
            page.wait_for_url(re.compile(r".*/jobs/\d+$"))
            page.click("#cancel")
            page.wait_for_url(re.compile(r".*/jobs/\d+\?cancelled=1.*"))
            assert "Cancelled" in page.inner_text("tr.delivery")
            walk.shoot("cancelled")
            walk.step("deferred fax cancelled")
        finally:
            browser.close()
    print(f"\nscreenshots: {SHOTS}")
    for name, seconds in walk.times:
        print(f"  {seconds:6.2f} s  {name}")
