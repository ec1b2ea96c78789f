"""The web space with the keyboard alone, in a real browser (Playwright driving Debian's
chromium): on every page an operator can open, Tab reaches each form's fields and buttons
in the page's order (no positive tabindex), each with a visible focus ring (web.css
`:focus-visible`, 2 px or more); forms are filled and submitted with Tab, typing, Space and
Enter only (a new group, its edit, the notices, an API token, an account's credits, and
logging out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailgw.accounts import groups, operators, voice
from mailgw.documents.samples import make_wav
from mailgw.store import Account
from mailgw.store.models import Job
from tests.conftest import PASSWORD, SENDER, Sink, need, wait_until
from tests.system.test_web_browser import CHROMIUM, served, sign_in, sync_api
from tests.webspace import WEB_PASSWORD, deferred_when, invite, send_fax

__all__ = ["served"]  # the fixture, used by name

MOST_TABS = 400
# every field and button of a form that a person uses (hidden inputs are not)
CONTROLS = "form :is(input:not([type=hidden]), select, textarea, button):not([disabled])"
FOCUSED = """() => { const e = document.activeElement;
  if (!e || e === document.body) return null;
  const s = getComputedStyle(e);
  if (!e.dataset.kbSeen) e.dataset.kbSeen = String(window.kbCount = (window.kbCount || 0) + 1);
  return {first: e.dataset.kbSeen === '1', key: e.dataset.kb || null, id: e.id, tag: e.tagName,
          ring: s.outlineStyle !== 'none' ? parseFloat(s.outlineWidth) : 0}; }"""


def _tabs(page: Any) -> list[dict[str, Any]]:
    """Tab from the top of the page until the focus comes back round: what got it."""
    page.goto(page.url)  # the focus at the top of the page, as a person arrives
    count = page.evaluate(f"""() => {{ let i = 0;
        for (const e of document.querySelectorAll('{CONTROLS}'))
            if (e.offsetParent !== null) e.dataset.kb = String(i++);
        return i; }}""")
    assert page.evaluate("() => [...document.querySelectorAll('[tabindex]')]"
                         ".filter(e => e.tabIndex > 0).length") == 0, "a positive tabindex"
    seen: list[dict[str, Any]] = []
    for _ in range(MOST_TABS):
        page.keyboard.press("Tab")
        got = page.evaluate(FOCUSED)
        if seen and (got is None or got["first"]):
            break  # round: back to the address bar (None) or to the first again
        if got is None or (seen and got == seen[-1]):
            continue  # a date field's day, month and year take a Tab each
        seen.append(got)
    keys = [int(s["key"]) for s in seen if s["key"] is not None]
    assert sorted(set(keys)) == list(range(count)), (page.url, "not reached", count, keys)
    assert keys == sorted(keys), (page.url, "the Tab order is not the page's", keys)
    return seen


def _tab_to(page: Any, selector: str) -> None:
    for _ in range(MOST_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} not reached with Tab on {page.url}")


def _enter(page: Any) -> None:
    """Enter on the focused button: the form is sent and the next page has loaded (the
    same URL again after an edit, so its load is waited for, not its address)."""
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _setup(app: Any, port: int, pdf: bytes) -> tuple[int, int]:
    """The sender is an operator, with a group, a sound and a deferred job (to cancel)."""
    with app.store.tx() as s:
        operators.set_flags(s, operators.Operator.command_line(), SENDER, admin=True)
        groups.add_numbers(s, SENDER, "team", ["0170709901"])
        me = s.query(Account).filter(Account.email == SENDER).one()
        voice.store_message(s, me.id, "hello", make_wav(1.0), 1.0, "hello.wav")
        account_id = me.id
    send_fax(port, f"{PASSWORD}:0170709902:LATER:{deferred_when()}", pdf)

    def job() -> int | None:
        with app.store.read() as s:
            found = s.query(Job.id).first()
            return int(found[0]) if found else None
    job_id = wait_until(job, what="the deferred job")
    return account_id, int(job_id)


def test_every_form_is_reached_and_submitted_with_the_keyboard(served, sink: Sink,
                                                               corpus: Path) -> None:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium); "
                            "the browser tests drive Debian's chromium")
    app, base = served
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    account_id, job_id = _setup(app, app.port, pdf)
    pages = ["/sent", f"/jobs/{job_id}", "/contacts", "/contacts/team", "/library",
             "/settings", "/settings/access", "/security", "/admin/accounts",
             f"/admin/accounts/{account_id}", "/admin/queue", "/admin/outbox", "/admin/audit"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
            page.goto(invite(app, sink))
            page.fill("#password", WEB_PASSWORD)
            page.fill("#confirm", WEB_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/login?done=set")
            _tabs(page)  # the sign-in form, signed out
            sign_in(page)
            page.wait_for_url(f"{base}/sent")
            for path in pages:
                page.goto(base + path)
                for got in _tabs(page):
                    assert got["ring"] >= 2, (path, "no visible focus ring on", got)

            # a new group: typed, then Enter on its button
            page.goto(f"{base}/contacts")
            _tab_to(page, "#group-name")
            page.keyboard.type("keys")
            _tab_to(page, "#group-numbers")
            page.keyboard.type("0170709903\n0170709904")
            _tab_to(page, "#create-group")
            _enter(page)
            page.wait_for_url(f"{base}/contacts/keys#report")
            assert page.inner_text("#n-added") == "2"
            # its edit
            _tab_to(page, "#edit-numbers")
            page.keyboard.press("Control+A")
            page.keyboard.type("0170709905")
            _tab_to(page, "#save-group")
            _enter(page)
            page.wait_for_url(f"{base}/contacts/keys#report")
            assert page.inner_text("#n-added") == "1"
            # the notices: a choice in a list with the arrows, saved with Enter
            page.goto(f"{base}/settings")
            _tab_to(page, "#mode")
            page.keyboard.press("ArrowDown")
            _tab_to(page, "#save-notices")
            _enter(page)
            page.wait_for_url(f"{base}/settings?done=saved#notices")
            assert page.input_value("#mode") != ""
            # an API token: a name, a scope ticked with Space
            page.goto(f"{base}/settings/access")
            _tab_to(page, "#token-name")
            page.keyboard.type("keyboard")
            _tab_to(page, "#scope-1")
            page.keyboard.press("Space")
            _tab_to(page, "#create-token")
            _enter(page)
            page.wait_for_selector("#new-token")
            assert "keyboard" in page.inner_text("#token-list")
            # an account's credits, on the admin page
            page.goto(f"{base}/admin/accounts/{account_id}")
            _tab_to(page, "#credits-input")
            page.keyboard.press("Control+A")
            page.keyboard.type("42")
            _tab_to(page, "#save-credits")
            _enter(page)
            page.wait_for_url(f"{base}/admin/accounts/{account_id}?done=credits")
            # and out
            _tab_to(page, "header form button")
            _enter(page)
            page.wait_for_url(lambda url: "/login" in url)
        finally:
            browser.close()
