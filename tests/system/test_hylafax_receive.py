"""Received faxes from a real HylaFAX (hfaxd on 127.0.0.1, tests/hylafax_env.py): mailgw
polls recvq through the client protocol (LIST recvq with RCVFMT, RETR) and mails each fax
once, as a PDF, to the account that owns the called number.

The TIFFs are put into recvq/ as faxgetty leaves them (uucp-owned, the sender's TSI and
HylaFAX's private tags): hfaxd's listing and transfer are real, the modem side is not (see
docs/testing.md for the T.30 receive that is not built yet).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailgw.accounts import accounts, inbound_numbers
from mailgw.dispatch.setup import make_driver
from mailgw.notify.received import run_receiving
from mailgw.store import Store
from tests.conftest import PASSWORD, Sink, make_settings
from tests.hylafax_env import HylafaxEnv, wait_for
from tests.hylafax_fixtures import running
from tests.integration.test_received import outbox_rows, send_all
from tests.received_faxes import body_text, hylafax_tiff, pdf_of

CSID = "+33 1 99 00 00 01 ACME"


def put(env: HylafaxEnv, name: str, data: bytes) -> None:
    path = env.spool / "recvq" / name
    path.write_bytes(data)
    subprocess.run(["chown", "uucp:uucp", str(path)], check=True)
    os.chmod(path, 0o644)


@pytest.fixture
def gw(hylafax: HylafaxEnv, tmp_path: Path, sink: Sink) -> Iterator[tuple[Store, Any]]:
    for old in (hylafax.spool / "recvq").glob("fax*.tif"):
        old.unlink()
    url = f"sqlite:///{tmp_path / 'recv.db'}"
    settings = make_settings(url, sink.port, dispatch={"driver": "hylafax"}, drivers={
        "hylafax": {"port": hylafax.port, "user": hylafax.USER, "timeout": "15s",
                    "receive_interval": "200ms", "receive_number": "+33170709902"}})
    store = Store(url)
    store.upgrade()
    with store.tx() as s:
        accounts.add_account(s, "alice@example.com", PASSWORD, region="FR", lang="en",
                             tz="Europe/Paris", credits=None)
        inbound_numbers.change(s, "alice@example.com", ["+33170709901"], [])
    yield store, settings
    store.dispose()


def test_recvq_faxes_are_mailed_once_by_called_number(hylafax, gw, sink) -> None:
    store, settings = gw
    put(hylafax, "fax00001.tif", hylafax_tiff(2, csid=CSID, subaddress="+33170709901",
                                              seconds=40))
    put(hylafax, "fax00002.tif", hylafax_tiff(1, csid="OTHER FAX", vres=98))
    driver = make_driver(settings, store)
    assert driver.receive_interval == 0.2
    assert asyncio.run(driver.poll_received()) == 2
    assert send_all(store, settings) == 2
    by_to = {m["To"]: m for m in sink.kinds("received")}
    mail = by_to["alice@example.com"]
    text = body_text(mail)
    assert f"({CSID})" in text and "Pages: 2" in text and "high (204×196 dpi)" in text
    assert len(pdf_of(mail)[1].pages) == 2
    # no subaddress: the line's own number (receive_number), which nobody owns; the
    # operator reads [notify] default_lang (fr)
    other = by_to["postmaster@gw.example.org"]
    assert "Numéro appelé : +33 1 70 70 99 02" in body_text(other)
    assert "normale (204×98 dpi)" in body_text(other)
    # a restart (a new driver, the same store) takes nothing twice
    assert asyncio.run(make_driver(settings, store).poll_received()) == 0
    assert outbox_rows(store) == 2


def test_the_daemon_loop_picks_up_a_new_fax(hylafax, gw, sink) -> None:
    store, settings = gw
    driver = make_driver(settings, store)

    async def run_a_while() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_receiving(driver, stop))
        await asyncio.sleep(0.5)
        put(hylafax, "fax00003.tif", hylafax_tiff(3, csid=CSID, subaddress="+33170709901"))
        for _ in range(100):
            if outbox_rows(store):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(run_a_while())
    assert send_all(store, settings) == 1
    (mail,) = sink.kinds("received")
    assert mail["To"] == "alice@example.com" and len(pdf_of(mail)[1].pages) == 3


# -- real T.30: a spandsp fax terminal calls in, faxgetty answers (slow) ------------------

@pytest.fixture(scope="module")
def t30_in(t31_binary: Path) -> Iterator[HylafaxEnv]:
    yield from running(HylafaxEnv("t31", t31_binary), faxgetty=True)


@pytest.mark.slow
def test_real_t30_receive_two_pages_mailed_as_pdf(t30_in: HylafaxEnv, tmp_path: Path,
                                                  sink: Sink) -> None:
    env = t30_in
    assert env.modem is not None
    far = "+33 199000001 T30"  # the sender's CSID (at most 20 characters)
    document = tmp_path / "send.tif"
    document.write_bytes(hylafax_tiff(2, csid=far))
    os.chmod(document, 0o644)
    url = f"sqlite:///{tmp_path / 'recv.db'}"
    settings = make_settings(url, sink.port, dispatch={"driver": "hylafax"}, drivers={
        "hylafax": {"port": env.port, "user": env.USER, "timeout": "15s",
                    "receive_interval": "1s", "receive_number": "+33170709901"}})
    store = Store(url)
    store.upgrade()
    with store.tx() as s:
        accounts.add_account(s, "bob@example.com", PASSWORD, region="FR", lang="en",
                             tz="Europe/Paris", credits=None)
        inbound_numbers.change(s, "bob@example.com", ["+33170709901"], [])
    started = time.monotonic()
    (env.modem.rxdir / "call.txt").write_text(f"+33199000001\t{far}\t{document}\n")
    driver = make_driver(settings, store)
    try:
        wait_for(lambda: asyncio.run(driver.poll_received()) > 0, 180, "the fax in recvq")
    except BaseException:
        print(env.diagnostics())
        print(env.modem.events())
        raise
    elapsed = time.monotonic() - started
    assert send_all(store, settings) == 1
    (mail,) = sink.kinds("received")
    assert mail["To"] == "bob@example.com"
    text = body_text(mail)
    assert f"({far})" in text and "Pages: 2" in text, text
    assert "From: +33 1 99 00 00 01" in text, text  # the caller ID faxgetty was given
    assert len(pdf_of(mail)[1].pages) == 2
    (call_,) = [e for e in env.modem.events() if e.get("mode") == "incoming"]
    assert call_["result"] == "ok" and call_["pages"] == 2, call_
    print(f"real T.30 receive: 2 pages, CSID {far!r}, call to mail in {elapsed:.1f} s")
    store.dispose()
