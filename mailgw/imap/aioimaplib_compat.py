"""Every use of aioimaplib beyond the public methods of ``IMAP4``, in one place.

Written against aioimaplib 2.0.3 (pyproject pins the 2.0 series). Each function says why it
reaches inside and what it touches; ``tests/unit/test_aioimaplib_compat.py`` fails when a
new release moves one of these internals. Before raising the pin, read
``IMAP4ClientProtocol._untagged_response``, ``IMAP4.create_client`` and ``IMAP4.idle_start``
of the new release again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import aioimaplib

WRITTEN_AGAINST = "2.0.3"


def hook_untagged(client: aioimaplib.IMAP4, hook: Callable[[bytes], None]) -> None:
    """Show every untagged line to ``hook`` before aioimaplib handles it.

    Why: aioimaplib drops untagged lines no pending command claims ("ignored untagged
    response"): an EXISTS that arrives between commands, and the server's BYE. It never turns
    a BYE or a closed connection into an error, and can hang on BYE during IDLE (its issue
    #110), so without this hook a session would not learn that new mail came or that the
    server left. Touches: the private method ``IMAP4ClientProtocol._untagged_response``
    (replaced on this one protocol instance; the original still runs after the hook).
    """
    protocol = client.protocol
    original = protocol._untagged_response

    def untagged(line: bytes) -> Any:
        hook(line)
        return original(line)

    protocol._untagged_response = untagged  # type: ignore[method-assign]


def starttls_command(client: aioimaplib.IMAP4) -> Any:
    """The STARTTLS command, as an awaitable of its ``Response`` (the caller bounds it).

    Why: aioimaplib has no STARTTLS, and a client that cannot upgrade must never LOGIN in
    clear instead. Touches: ``aioimaplib.Command``, ``protocol.new_tag`` and
    ``protocol.execute`` (public names, but not part of ``IMAP4``).
    """
    protocol = client.protocol
    command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    return protocol.execute(command)


async def upgrade_to_tls(client: aioimaplib.IMAP4, context: ssl.SSLContext,
                         server_hostname: str) -> None:
    """After an OK to STARTTLS: the TLS handshake on the same connection.

    Touches: ``protocol.transport`` (swapped for the TLS transport) and
    ``protocol.capabilities`` (emptied: what the server said in clear is not to be trusted;
    :func:`refresh_capabilities` asks again).
    """
    protocol = client.protocol
    loop = asyncio.get_running_loop()
    transport = await loop.start_tls(protocol.transport, protocol, context,
                                     server_hostname=server_hostname)
    protocol.transport = transport
    protocol.capabilities = set()


def refresh_capabilities(client: aioimaplib.IMAP4) -> Any:
    """CAPABILITY, as an awaitable (``IMAP4`` only asks once, at the greeting)."""
    return client.protocol.capability()


def drain_idle_queue(client: aioimaplib.IMAP4) -> None:
    """Forget server pushes left over from an earlier IDLE, so they do not end the next one.

    Touches: ``protocol.idle_queue``, which ``IMAP4.wait_server_push`` reads from.
    """
    queue = client.protocol.idle_queue
    while not queue.empty():
        queue.get_nowait()


def abandon(client: aioimaplib.IMAP4) -> None:
    """Close a client now, without awaiting anything (the server may be gone or hanging).

    Why: ``IMAP4`` has only ``logout()``, which awaits the server. Touches: ``IMAP4.tasks``,
    ``protocol.tasks`` (cancelled), ``IMAP4._client_task`` (the connection attempt,
    cancelled if still running) and ``protocol.transport`` (closed).
    """
    for task in list(client.tasks) + list(client.protocol.tasks):
        task.cancel()
    if not client._client_task.done():
        client._client_task.cancel()
    transport = client.protocol.transport
    if transport is not None:
        transport.close()
