"""The HTML part of every mail in a real browser: acks (accepted, refused, preview), notices
(each delivery state), summaries (each outcome), received faxes and the invitation, in fr,
en and ru, opened in Debian's chromium (Playwright, no download) at 375 and 900 px, light
and dark. Nothing may be wider than the screen, the badge must show the translated word,
the outcome line must come before the table, and the text must keep its contrast (WCAG AA,
4.5:1) on the light and on the dark colours.

Screenshots go to a temporary directory (printed), never committed. The checks without a
browser (Subjects, the outcome header, the size of a big summary) run everywhere.
"""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mailgw.codes import Code
from mailgw.dispatch.drivers.ports import ReceivedFax
from mailgw.notify.messages import AckFacts, ack_mail, notice_mail, summary_mail
from mailgw.notify.preview import _sample
from mailgw.notify.received import received_mail
from mailgw.notify.render import Rendered, Renderer
from mailgw.notify.words import words
from mailgw.store.models import Delivery, utcnow
from mailgw.vocab import OUTCOME_WORD
from tests.conftest import need

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(tempfile.gettempdir()) / "mailgw-mail-shots"
BASE = "https://fax.example.org"
LANGS = ("fr", "en", "ru")
OPEN = {"fr": "Ouvrir dans l'espace web", "en": "Open in the web space",
        "ru": "Открыть в личном кабинете"}
LONG = "relance-" + "x" * 90 + " " + "très-long-commentaire-sans-espaces-" * 3
NUMBERS = [f"+33 1 70 70 99 {n:02d}" for n in range(10, 40)]


def _renderer(base_url: str = BASE) -> Renderer:
    return Renderer(from_address="fax@gw.example.org", domain="gw.example.org",
                    base_url=base_url)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (1728, 2200), 1).save(out, "PNG")
    return out.getvalue()


def ack(lang: str, kind: str, renderer: Renderer | None = None) -> Rendered:
    now = utcnow()
    facts = {"accepted": dict(code=Code.SENDING, job_ids=[42], numbers=NUMBERS, pages=3,
                              documents=["facture-2024-0001-avec-un-nom-tres-long.pdf (3)"],
                              ignored=["logo.png"], quality="high", ref="INV-7", comment=LONG),
             "refused": dict(code=Code.BAD_NUMBER, detail="0170 70 99 0 n'est pas un numéro",
                             invalid_numbers=["0170709", "+33" + "9" * 40]),
             "preview": dict(code=Code.SENDING, job_ids=[42], numbers=NUMBERS[:1], pages=1,
                             preview=True, preview_png=_png(), preview_pdf=b"%PDF-1.4")}[kind]
    return ack_mail(renderer or _renderer(), AckFacts(
        to="alice@example.com", lang=lang, tz="Europe/Paris", channel="fax", received=now,
        original_subject="•••:0170709901:INV-7:" + LONG, original_message_id="<m@example.com>",
        **facts))  # type: ignore[arg-type]


def notice(lang: str, state: str, channel: str = "fax") -> Rendered:
    account, job, delivery, attempts = _sample(state, channel, lang)
    job.subject, job.comment = "•••:0170709901:INV-7:" + LONG, LONG
    return notice_mail(_renderer(), job, delivery, attempts, account)


def summary(lang: str, outcome: str, renderer: Renderer | None = None,
            size: int = 6) -> Rendered:
    account, job, _, _ = _sample("partial", "fax", lang)
    job.outcome, job.comment = outcome, LONG
    states = {"delivered_all": ["delivered"], "delivered_none": ["failed", "expired"],
              "partial": ["delivered", "partial", "failed", "cancelled"],
              "in_progress": ["delivered", "queued", "sending", "failed"]}[outcome]
    if outcome == "in_progress":
        job.finished_at = None
    sent = {"delivered": 5, "partial": 2}
    deliveries = [Delivery(id=i, job_id=42, number=f"+3317070{i:04d}", state=state,
                           pages_sent=sent.get(state, 0), pages_total=5,
                           csid=f"+33 1 70 70 {i:04d}" if state in sent else None, attempts=1,
                           finished_at=utcnow())
                  for i, state in ((i, states[i % len(states)]) for i in range(size))]
    return summary_mail(renderer or _renderer(), job, deliveries, account,
                        "\ufeffREF_LIST;ID_LINE\r\n")


def received(lang: str, partial: bool) -> Rendered:
    fax = ReceivedFax(source="hylafax:127.0.0.1:4559", name="fax00001.tif",
                      called="+33199000001", caller="+33170709901", csid="CABINET DUPONT",
                      pages=3, duration=95.0, received_at=utcnow() - timedelta(minutes=1),
                      resolution=196, partial=partial,
                      error="ligne coupée page 3" if partial else "")
    return received_mail(_renderer(), fax, to="alice@example.com", lang=lang,
                         tz="Europe/Paris", unmapped=partial,
                         attachment=("fax-20240101-120000.pdf", b"%PDF", "application", "pdf"))


def invite(lang: str) -> Rendered:
    ctx = {"email": "alice@example.com", "link": f"{BASE}/invite/" + "t" * 43,
           "expires": "01/01/2030 12:00:00 CET"}
    return _renderer().render("invite", "invite", lang, "alice@example.com", ctx, {})


# (name, mail maker, the badge's word key in notify.words, the mail has a job button)
CASES: list[tuple[str, Any, str | None, bool]] = [
    ("ack-accepted", lambda lang: ack(lang, "accepted"), "ack_accepted", True),
    ("ack-refused", lambda lang: ack(lang, "refused"), "ack_refused", False),
    ("ack-preview", lambda lang: ack(lang, "preview"), "ack_preview", False),
    *[(f"notice-{s}", lambda lang, s=s: notice(lang, s), s, True)
      for s in ("delivered", "partial", "failed", "cancelled", "expired")],
    ("notice-voice-delivered", lambda lang: notice(lang, "delivered", "voice"), "delivered",
     True),
    *[(f"summary-{o}", lambda lang, o=o: summary(lang, o),
       "partial_job" if o == "partial" else o, True)
      for o in ("in_progress", "delivered_all", "delivered_none", "partial")],
    ("received", lambda lang: received(lang, False), "fax_received", False),
    ("received-incomplete", lambda lang: received(lang, True), "fax_incomplete", False),
    ("invite", invite, None, True),
]


def parse(mail: Rendered) -> EmailMessage:
    msg = message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(msg, EmailMessage) and not msg.defects
    return msg


def html_of(msg: EmailMessage) -> str:
    """The HTML part, its inline pictures made data: URLs (a browser knows no cid:)."""
    body = msg.get_body(preferencelist=("html",))
    assert body is not None
    html = str(body.get_content())
    for part in msg.walk():
        cid = part.get("Content-ID")
        if cid:
            data = base64.b64encode(part.get_payload(decode=True)).decode()
            html = html.replace(f"cid:{cid.strip('<>')}", f"data:image/png;base64,{data}")
    return html


# -- without a browser ---------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("outcome", sorted(OUTCOME_WORD))
def test_a_summary_subject_has_the_outcome_in_the_readers_language(lang: str,
                                                                   outcome: str) -> None:
    msg = parse(summary(lang, outcome))
    local = words(lang)["partial_job" if outcome == "partial" else outcome]
    assert msg["Subject"].startswith(f"[{local}] ")
    assert msg["X-Mailgw-Outcome"] == OUTCOME_WORD[outcome]  # English, for scripts
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None and local in str(text.get_content())
    if lang != "en":
        assert local != OUTCOME_WORD[outcome], "the word is not translated"
        assert f"[{OUTCOME_WORD[outcome]}]" not in msg["Subject"]


def test_the_button_needs_a_base_url_and_the_html_states_its_colour_scheme() -> None:
    without = html_of(parse(ack("en", "accepted", _renderer(""))))
    assert 'class="mg-button"' not in without and "/jobs/" not in without
    with_link = html_of(parse(ack("en", "accepted")))
    assert f'href="{BASE}/jobs/42"' in with_link and OPEN["en"] in with_link
    for html in (without, with_link):
        assert '<meta name="color-scheme" content="light dark">' in html
        assert "max-width:600px" in html and "prefers-color-scheme: dark" in html


def test_a_summary_of_200_numbers_stays_under_gmails_cut() -> None:
    msg = parse(summary("fr", "partial", size=240))
    html = html_of(msg)
    assert html.count('class="mg-t-') == 200 and "… et 40 autres" in html
    assert len(html.encode()) < 100_000, len(html.encode())  # Gmail clips at 102 kB


# -- in chromium ---------------------------------------------------------------------------

CHECKS = """() => {
  const vw = window.innerWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > vw + 0.5 || r.left < -0.5)
      wide.push(`${el.tagName}.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const back = el => { for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c; }
    return [255, 255, 255]; };  // the canvas of a page that sets no colour
  const poor = [];
  for (const el of document.body.querySelectorAll('h1, h2, p, th, td, a, span, strong')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.getBoundingClientRect().width === 0) continue;
    const f = lum(rgb(getComputedStyle(el).color)), b = lum(back(el));
    const ratio = (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05);
    if (ratio < 4.5)
      poor.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  const badge = document.querySelector('.mg-badge');
  const h1 = document.querySelector('h1');
  const table = document.querySelector('th');
  const button = document.querySelector('.mg-button a');
  return {scroll: document.documentElement.scrollWidth, vw, wide, poor,
          badge: badge ? badge.innerText : null, h1: h1 ? h1.innerText : null,
          ordered: !!(h1 && (!table || (h1.compareDocumentPosition(table) & 4))
                      && (!badge || (badge.compareDocumentPosition(h1) & 4))),
          button: button ? [button.innerText, button.getAttribute('href')] : null};
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium); "
                            "the browser tests drive Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not "
                                   "installed (pip install -e '.[test]')")
    SHOTS.mkdir(exist_ok=True)
    print(f"\nmail screenshots: {SHOTS}")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("name", "make", "word", "button"), CASES, ids=[c[0] for c in CASES])
def test_every_mail_fits_a_phone_and_a_desktop_light_and_dark(
        browser: Any, name: str, make: Any, word: str | None, button: bool, lang: str) -> None:
    html = html_of(parse(make(lang)))
    page = browser.new_page()
    try:
        page.set_content(html)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for width in (375, 900):
                page.set_viewport_size({"width": width, "height": 800})
                seen = page.evaluate(CHECKS)
                page.screenshot(path=str(SHOTS / f"{name}-{lang}-{width}-{scheme}.png"),
                                full_page=True)
                where = f"{name} {lang} {width} px {scheme}"
                assert seen["scroll"] <= width, f"{where}: {seen['scroll']} px wide"
                assert not seen["wide"], f"{where}: wider than the screen: {seen['wide']}"
                assert not seen["poor"], f"{where}: contrast under 4.5:1: {seen['poor']}"
                if word is None:
                    assert seen["badge"] is None
                else:
                    assert seen["badge"] is not None and words(lang)[word] in seen["badge"], \
                        f"{where}: badge {seen['badge']!r}"
                assert seen["h1"], f"{where}: no outcome line"
                assert seen["ordered"], f"{where}: badge, outcome line, then the table"
                if button and name != "invite":
                    assert seen["button"] is not None and seen["button"][0].startswith(
                        OPEN[lang]) and seen["button"][1] == f"{BASE}/jobs/42", where
                elif not button:
                    assert seen["button"] is None, where
    finally:
        page.close()


def test_the_checks_see_a_mail_too_wide_and_too_pale(browser: Any) -> None:
    """The checks above are not blind: a fixed 600 px table and grey on white fail them."""
    page = browser.new_page(viewport={"width": 375, "height": 800})
    try:
        page.set_content('<table width="600"><tr><td style="color:#999">pale</td></tr></table>')
        seen = page.evaluate(CHECKS)
        assert seen["scroll"] > 375 and any(w.startswith("TABLE") for w in seen["wide"])
        assert seen["poor"] and seen["poor"][0].startswith('TD "pale"')
        assert seen["badge"] is None and seen["h1"] is None and not seen["ordered"]
    finally:
        page.close()
