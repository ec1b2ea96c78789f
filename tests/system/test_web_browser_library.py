"""The web space's Settings, Contacts and Library in a real browser (Playwright driving
Debian's chromium): a user imports a contact CSV, uploads a sound, turns the notices to
`summary`, then sends a fax by mail through the real SMTP listener and the summary
(X-Mailgw-Kind: summary) reaches the sink instead of a notice per number.

Screenshots of each page at 1280 and 375 px go to a temporary directory (printed), never
committed; the step timings are printed, never asserted.
"""

from __future__ import annotations

from pathlib import Path

from mailgw.documents.samples import make_wav
from tests.conftest import PASSWORD, SENDER, Sink, need
from tests.system.test_web_browser import CHROMIUM, SHOTS, Walk, served, sign_in, sync_api
from tests.webspace import WEB_PASSWORD, invite, send_fax

__all__ = ["served"]  # the fixture, used by name

CSV = "Société;Fax\nDupont;01 70 70 99 01\nDurand;01 70 70 99 97\nBis;0170709901\nNul;12\n"


def test_contacts_library_and_notice_settings_in_a_browser(served, sink: Sink,
                                                           corpus: Path) -> None:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium); "
                            "the browser tests drive Debian's chromium")
    app, base = served
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
            walk = Walk(page)
            page.goto(invite(app, sink))
            page.fill("#password", WEB_PASSWORD)
            page.fill("#confirm", WEB_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/login?done=set")
            sign_in(page)
            page.wait_for_url(f"{base}/sent")
            walk.step("signed in")
            # 1. a contact CSV as a French Excel saves it (Windows-1252, ';')
            page.click("nav a[href='/contacts']")
            page.wait_for_url(f"{base}/contacts")
            page.fill("#import-name", "clients")
            page.set_input_files("#import-file", files=[{
                "name": "clients.csv", "mimeType": "text/csv",
                "buffer": CSV.encode("cp1252")}])
            page.click("#import-submit")
            page.wait_for_url(f"{base}/contacts/clients#report")
            assert page.inner_text("#n-added") == "2"
            assert page.inner_text("#n-duplicates") == "1"
            assert page.inner_text("#n-invalid") == "1"
            assert "Société" in page.inner_text("#member-list")
            walk.shoot("group-imported")
            page.goto(f"{base}/contacts")
            walk.shoot("contacts")
            walk.step("contact CSV imported")
            # 2. a sound, through intake's checks and conversion
            page.click("nav a[href='/library']")
            page.fill("#sound-ref", "promo-1")
            page.set_input_files("#sound-file", files=[{
                "name": "promo.wav", "mimeType": "audio/wav", "buffer": make_wav(2.0)}])
            page.click("#upload-sound")
            page.wait_for_url(f"{base}/library?stored=promo-1")
            assert "promo-1" in page.inner_text("#message")
            audio = page.locator("tr[data-ref='promo-1'] audio")
            assert audio.get_attribute("src") == "/library/promo-1/sound.wav"
            # the browser plays it under the page's CSP (media-src 'self'): its length
            seconds = audio.evaluate("""a => new Promise((done, fail) => {
                a.onloadedmetadata = () => done(a.duration); a.onerror = () => fail('error');
                a.preload = 'auto'; a.load(); })""")
            assert 1.5 < seconds < 2.5
            walk.shoot("library")
            walk.step("sound uploaded")
            # 3. notices: one summary per job
            page.click("nav a[href='/settings']")
            page.select_option("#mode", "summary")
            page.click("#save-notices")
            page.wait_for_url(f"{base}/settings?done=saved#notices")
            assert page.locator("#mode").input_value() == "summary"
            walk.shoot("settings")
            page.goto(f"{base}/settings/access")
            walk.shoot("access")
            walk.step("notices set to summary")
            # 4. the next job by mail gets one summary, no notice per number
            send_fax(app.port, f"{PASSWORD}:0170709901,0170709997:SUM-1", pdf)
            mails = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "summary"
                                                 for m in ms), timeout=60,
                                  what="the job's summary")
            summary = next(m for m in mails if m["X-Mailgw-Kind"] == "summary")
            assert summary["To"] == SENDER
            assert [m["X-Mailgw-Kind"] for m in sink.messages].count("notice") == 0
            walk.step("summary mail received")
        finally:
            browser.close()
    print(f"\nscreenshots: {SHOTS}")
    for name, seconds in walk.times:
        print(f"  {seconds:6.2f} s  {name}")
