"""An operator's walk through the admin pages in a real browser (Playwright driving
Debian's chromium): sign in, create an account, send its invitation, change its credits,
disable it (and its mail is then refused with 82 over real SMTP), look at the queue, retry
a dead outbox mail (which then reaches the smarthost), and read it all on the Audit page.

Screenshots at 1280 and 375 px go to a temporary directory (printed), never committed;
the step timings are printed, never asserted.
"""

from __future__ import annotations

import re
import smtplib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailgw.accounts import operators
from mailgw.http.asgi import build
from tests.conftest import RunningApp, Sink, fax_message, free_port, need, wait_until
from tests.integration.test_end_to_end import send
from tests.integration.test_web_admin import dead_mail
from tests.system.test_web_browser import CHROMIUM, SHOTS, Walk, sign_in
from tests.webspace import WEB_PASSWORD, invite

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[test]')")
uvicorn = pytest.importorskip("uvicorn")

ADMIN, CAROL = "ops@example.com", "carol@example.com"


@pytest.fixture
def served(make_app) -> Iterator[tuple[RunningApp, str]]:  # type: ignore[no-untyped-def]
    """The daemon with an operator account, its web space on uvicorn on a free port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(notify={"base_url": base})
    app.add_account(ADMIN, "OPSPASS12")
    with app.store.tx() as s:
        operators.set_flags(s, operators.Operator.command_line(), ADMIN, admin=True)
    assert app.app is not None
    server = uvicorn.Server(uvicorn.Config(build(app.app), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to listen")
    yield app, base
    server.should_exit = True
    thread.join(10)


def test_an_operator_walks_through_the_admin_pages(served, sink: Sink, corpus: Path) -> None:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium); "
                            "the browser tests drive Debian's chromium")
    app, base = served
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    lost = dead_mail(app, 1)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
            walk = Walk(page)
            # 1. the operator's own invitation, then sign-in: the Admin link is there
            page.goto(invite(app, sink, ADMIN))
            page.fill("#password", WEB_PASSWORD)
            page.fill("#confirm", WEB_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/login?done=set")
            sign_in(page, ADMIN)
            page.wait_for_url(f"{base}/sent")
            page.click("#nav-admin")
            page.wait_for_url(f"{base}/admin/accounts")
            walk.step("operator signed in, on Accounts")
            # 2. create an account from the form
            page.fill("#new-email", CAROL)
            page.fill("#new-password", "CAROL1")
            page.fill("#new-credits", "3")
            page.click("#create")
            page.wait_for_url(re.compile(r".*/admin/accounts/\d+\?done=created$"))
            account_page = page.url.split("?")[0]
            assert page.inner_text("#message") == "Account created."
            assert page.inner_text("#credits") == "3"
            walk.step("account created")
            # 3. its invitation reaches the sink
            page.click("#invite")
            page.wait_for_url(f"{account_page}?done=invited")
            sink.wait_for(lambda _: any(m["To"] == CAROL for m in sink.kinds("invite")),
                          what="carol's invitation")
            walk.step("invitation sent")
            # 4. credits: ten more
            page.fill("#credits-input", "+10")
            page.click("#save-credits")
            page.wait_for_url(f"{account_page}?done=credits")
            assert page.inner_text("#credits") == "13"
            walk.shoot("admin-account")
            walk.step("credits changed")
            # 5. carol's mail is accepted, then she is disabled and her mail refused (82)
            ok = send(app.port, fax_message("CAROL1:0170709901", pdf, sender=CAROL))
            assert ok.startswith("250")
            page.click("#disable")
            page.wait_for_url(f"{account_page}?done=disabled")
            assert page.inner_text("#status") == "disabled"
            with pytest.raises(smtplib.SMTPDataError) as refused:
                send(app.port, fax_message("CAROL1:0170709902", pdf, sender=CAROL))
            assert refused.value.smtp_code == 550 and b"[82]" in refused.value.smtp_error
            page.goto(f"{base}/admin/accounts")
            assert "disabled" in page.inner_text(f"tr[data-account='{CAROL}']")
            walk.shoot("admin-accounts")
            walk.step("account disabled, its mail refused with 82")
            # 6. the queue now
            page.click("nav.subnav >> text=Queue")
            page.wait_for_url(f"{base}/admin/queue")
            assert page.inner_text("#outbox-dead") == "1"
            assert "simulator" in page.inner_text("#lines")
            walk.shoot("admin-queue")
            walk.step("queue seen")
            # 7. the dead mail, retried: it reaches the smarthost
            page.click("#outbox-dead a")
            page.wait_for_url(f"{base}/admin/outbox")
            walk.shoot("admin-outbox")
            page.click(f"tr[data-mail='{lost}'] button.retry")
            page.wait_for_url(f"{base}/admin/outbox?done=retried")
            sink.wait_for(lambda ms: any(m["To"] == "lost1@example.com" for m in ms),
                          what="the retried mail")
            assert page.locator("#no-dead").count() == 1
            walk.step("dead mail retried and delivered to the smarthost")
            # 8. the Audit page says who did what
            page.click("nav.subnav >> text=Audit")
            page.wait_for_url(f"{base}/admin/audit")
            codes = page.locator("#audit tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.action)")
            assert codes[:5] == ["outbox_retry", "account_disable", "credits", "invite",
                                 "account_create"]
            assert ADMIN in page.inner_text("#audit tbody tr:first-child")
            walk.shoot("admin-audit")
            walk.step("audit read")
        finally:
            browser.close()
    print(f"\nscreenshots: {SHOTS}")
    for name, seconds in walk.times:
        print(f"  {seconds:6.2f} s  {name}")
