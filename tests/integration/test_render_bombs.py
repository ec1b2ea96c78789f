"""Render-time bombs (issue 15, item 5): each ends in a clear refusal with its reason, in the
sandbox and over real SMTP, and never leaves a dead worker behind."""

from __future__ import annotations

import binascii
import dataclasses
import os
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailgw.documents import checks as documents
from mailgw.documents import sandbox
from mailgw.documents.checks import DocumentCheck
from mailgw.documents.samples import make_pdf
from mailgw.documents.sandbox import Limits
from tests import render_samples as samples
from tests import sandbox_selftest
from tests.conftest import PASSWORD, fax_message

LIMITS = Limits()
FORKED = dataclasses.replace(LIMITS, fork_per_document=True)


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    sandbox.shutdown()
    yield
    sandbox.shutdown()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: the bombs are the sandbox's business, not the store's."""
    return f"sqlite:///{tmp_path / 'mailgw.db'}"


def zombies() -> list[int]:
    """Our own children that died and were not reaped."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] == "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def assert_workers_sound() -> None:
    """Every worker the pool holds is alive, no dead one is left unreaped, and the next
    normal document is read by a live worker."""
    assert all(alive(pid) for pid in sandbox.worker_pids())
    assert zombies() == []
    check = documents.check_pdf(make_pdf([["after the bomb"]]), LIMITS)
    assert check.usable and check.pages == 1
    assert sandbox.worker_pids() and all(alive(pid) for pid in sandbox.worker_pids())


def form_bomb_pdf() -> bytes:
    """The 1 GB stream hidden in a form the page draws (not in the page's own content)."""
    form = samples.stream(samples.flate_of_spaces(b"0 g 0 0 10 10 re f\n", 1 << 30),
                          b"/Type /XObject /Subtype /Form /BBox [0 0 100 100] "
                          b"/Filter /FlateDecode ")
    return samples.one_page_pdf(b"/Fm0 Do", extra=b"/Resources << /XObject << /Fm0 5 0 R >> >> ",
                                objects=(form,))


def hex_flate_bomb_pdf() -> bytes:
    """The 1 GB flate stream behind ASCIIHex: a filter chain pypdf decodes under its limits."""
    data = binascii.hexlify(samples.flate_of_spaces(b"0 g\n", 1 << 30)) + b">"
    return samples.one_page_pdf(data, filtered=b"/Filter [/ASCIIHexDecode /FlateDecode] ")


BOMBS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "1 GB flate stream": (samples.flate_bomb_pdf, "pdf", "content_too_large"),
    "1 GB flate in a form": (form_bomb_pdf, "pdf", "content_too_large"),
    "1 GB flate behind ASCIIHex": (hex_flate_bomb_pdf, "pdf", "content_too_large"),
    "200 x 200 inch page": (samples.huge_page_pdf, "pdf", "page_too_large"),
    "20,000 px square image in a PDF": (samples.huge_image_pdf, "pdf", "bitmap_too_large"),
    "20,000 px square PNG": (samples.png_bomb, "picture", "bitmap_too_large"),
}


def check(data: bytes, kind: str, limits: Limits) -> DocumentCheck:
    return documents.check_pdf(data, limits) if kind == "pdf" else \
        documents.check_picture(data, limits)


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_are_refused_with_their_reason(name: str) -> None:
    make, kind, reason = BOMBS[name]
    data = make()
    assert len(data) < 3 << 20  # small on disk, huge once decoded or drawn
    sandbox.prestart(1)
    first = sandbox.worker_pids()
    got = check(data, kind, LIMITS)
    assert not got.usable and got.reason == reason, got
    assert got.error and dict(got.params).get("page") == 1
    retired = [pid for pid in first if pid not in sandbox.worker_pids()]
    assert retired and not any(alive(pid) for pid in retired)  # it left, and was reaped
    assert_workers_sound()


def test_the_largest_picture_under_the_bitmap_cap_renders_within_the_memory_limit() -> None:
    """The cap is there to give a reason, not to let through what then dies on the
    sandbox's memory limit: an RGBA PNG of exactly 128 MB decoded renders; a larger one
    is refused with the cap's sentence."""
    from PIL import Image

    from mailgw.documents.render import MAX_BITMAP_BYTES

    side = int((MAX_BITMAP_BYTES // 4) ** 0.5)
    largest = samples.picture(Image.new("RGBA", (side, side), (10, 200, 30, 128)), "PNG",
                              compress_level=1)
    got = check(largest, "picture", LIMITS)
    assert got.usable and got.pages == 1, got
    over = samples.picture(Image.new("RGBA", (side + 8, side + 8)), "PNG", compress_level=1)
    assert check(over, "picture", LIMITS).reason == "bitmap_too_large"
    assert_workers_sound()


@pytest.mark.parametrize("limits", [LIMITS, FORKED], ids=["in-worker", "forked"])
def test_the_flate_bomb_in_both_sandbox_modes(limits: Limits) -> None:
    got = check(samples.flate_bomb_pdf(), "pdf", limits)
    assert got.reason == "content_too_large"
    assert_workers_sound()


def test_a_10000_page_tree_is_counted_never_drawn() -> None:
    tree = samples.page_tree_pdf(10_000)
    answer = documents.render(tree, "pdf", LIMITS)
    assert answer["usable"] is True and answer["pages"] == 10_000
    assert answer["rendered"] is False  # counted by walking the tree, nothing drawn
    assert_workers_sound()


def test_without_the_content_cap_pdfium_would_use_gigabytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the checks come first: the same bomb handed straight to PDFium (no checks) in the
    sandbox is stopped only by the memory limit, and the worker dies (then is replaced)."""
    sandbox_selftest.enable(monkeypatch)
    answer = documents.render(samples.flate_bomb_pdf(), "pdf", LIMITS)
    assert answer["reason"] == "content_too_large"  # with the checks: a clear reason
    from mailgw.documents.sandbox import SandboxFailure

    with pytest.raises(SandboxFailure):  # without them: killed (SIGABRT in PDFium's alloc)
        sandbox.run("_selftest_pdfium", samples.flate_bomb_pdf(), LIMITS)
    assert_workers_sound()


# -- over real SMTP -----------------------------------------------------------------------------

def send(port: int, msg: object) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("client.example.com")
        client.mail("alice@example.com")
        assert client.rcpt("fax@gw.example.org")[0] == 250
        code, text = client.data(msg.as_bytes().replace(b"\n", b"\r\n"))  # type: ignore[attr-defined]
    return code, text.decode()


def test_bombs_over_smtp_get_94_with_the_reason_and_the_next_fax_goes(make_app, sink) -> None:
    app = make_app()
    app.add_account()
    cases = [
        (samples.flate_bomb_pdf(), "drawing instructions expand to more than 64 MB"),
        (samples.huge_page_pdf(), "page 1 is 200 x 200 in, at most 50 in on a side"),
        (samples.page_tree_pdf(10_000), "10000 pages, at most 200"),
    ]
    for pdf, reason in cases:
        code, text = send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf))
        assert code == 552 and "[94]" in text and reason in text, (code, text)
        assert all(alive(pid) for pid in sandbox.worker_pids()) and zombies() == []
    code, text = send(app.port, fax_message(f"{PASSWORD}:0170709901", make_pdf([["fine"]])))
    assert code == 250 and "[80]" in text, text
    acks = sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "ack"]) >= 4,
                         what="four acks")
    codes = sorted(m["X-Mailgw-Code"] for m in acks if m["X-Mailgw-Kind"] == "ack")
    assert codes == ["80", "94", "94", "94"]
    bodies = " ".join(str(m.get_body(("plain",)).get_content()) for m in acks
                      if m["X-Mailgw-Code"] == "94")
    assert "64 MB" in bodies and "50 in" in bodies and "10000 pages" in bodies
