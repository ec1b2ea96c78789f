"""IMAP without a server: mailbox names, the loopback rule, and the aioimaplib internals that
mailgw/imap/aioimaplib_compat.py relies on (this fails when a new aioimaplib moves them)."""

from __future__ import annotations

import asyncio
import socket
from importlib.metadata import version

import aioimaplib
import structlog

from mailgw.imap import aioimaplib_compat as compat
from mailgw.imap.client import ImapClient, is_loopback, quote_mailbox


def test_mailbox_names_and_loopback() -> None:
    assert quote_mailbox("INBOX") == "INBOX" and quote_mailbox("Fax/Done") == "Fax/Done"
    assert quote_mailbox("Sent Items") == '"Sent Items"'
    assert quote_mailbox("[Gmail]/All Mail") == '"[Gmail]/All Mail"'
    assert quote_mailbox("Traités") == "Trait&AOk-s"  # modified UTF-7 (RFC 3501 5.1.3)
    assert quote_mailbox("A&B") == "A&-B"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("imap.example.org") and not is_loopback("192.0.2.1")


def test_aioimaplib_is_the_series_compat_was_written_against() -> None:
    assert version("aioimaplib").split(".")[:2] == compat.WRITTEN_AGAINST.split(".")[:2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_internals_compat_touches_are_there() -> None:
    protocol_class = aioimaplib.IMAP4ClientProtocol
    for name in ("_untagged_response", "new_tag", "execute", "capability"):
        assert callable(getattr(protocol_class, name, None)), name
    assert "_client_task" in aioimaplib.IMAP4.__annotations__
    assert callable(aioimaplib.Command)

    async def main() -> None:
        imap = aioimaplib.IMAP4(host="127.0.0.1", port=_closed_port(), timeout=1)
        protocol = imap.protocol
        assert isinstance(protocol.idle_queue, asyncio.Queue)
        assert isinstance(imap.tasks, set) and isinstance(protocol.tasks, set)
        assert isinstance(protocol.capabilities, set) and protocol.transport is None
        seen: list[bytes] = []
        compat.hook_untagged(imap, seen.append)
        protocol._untagged_response(b"* 3 EXISTS")  # no command pending: aioimaplib drops it
        assert seen == [b"* 3 EXISTS"]
        protocol.idle_queue.put_nowait([b"1 EXISTS"])
        compat.drain_idle_queue(imap)
        assert protocol.idle_queue.empty()
        compat.abandon(imap)
        await asyncio.sleep(0)
        assert imap._client_task.cancelled() or imap._client_task.done()

    asyncio.run(main())


def test_the_client_notices_exists_and_bye() -> None:
    async def main() -> None:
        imap = aioimaplib.IMAP4(host="127.0.0.1", port=_closed_port(), timeout=1)
        client = ImapClient(imap, asyncio.Event(), 1.0, structlog.get_logger())
        try:
            imap.protocol._untagged_response(b"* 4 EXISTS")
            assert client.exists_seen and not client.lost.is_set()
            client.leaving = True
            imap.protocol._untagged_response(b"* BYE logging out")  # our LOGOUT's BYE
            assert not client.lost.is_set()
            client.leaving = False
            imap.protocol._untagged_response(b"* BYE shutting down")
            assert client.lost.is_set()
        finally:
            client.abandon()
            await asyncio.sleep(0)

    asyncio.run(main())
