"""The outbox: mails are rows written with the change that causes them, sent until taken.

Back-off: 5 s doubling to 60 s during the first hour, then every 5 minutes; after
`notify.give_up` the row gets a dead mark. A row keeps its Message-ID when re-sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
import urllib.error
import urllib.request
from datetime import timedelta

import aiosmtplib
import structlog
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from mailgw.idle import until_woken
from mailgw.notify.render import Rendered
from mailgw.ops import metrics
from mailgw.ops.config import NotifySettings, split_hostport
from mailgw.store import OutboxMail, Store, utcnow
from mailgw.store import outbox as rows
from mailgw.store.outbox import Claimed, claim, mark_sent_many

log = structlog.get_logger("mailgw.notify")
WEBHOOK = "webhook"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", as the receiver recomputes it."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def post_webhook(url: str, body: bytes, secret: str | None, timeout: float) -> int:
    """POST one event; the HTTP status (0 when there was no answer)."""
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "mailgw-webhook",
               "X-Mailgw-Timestamp": timestamp}
    if secret:
        headers["X-Mailgw-Signature"] = sign(secret, timestamp, body)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - account's URL
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def enqueue_many(session: Session | Connection, mails: list[tuple[Rendered, int | None]], *,
                 return_path: str) -> None:
    """Queue (mail, job id) pairs in one INSERT: intake's committer writes a batch's acks
    at once, without an ORM object per mail."""
    rows.add_many(session, [
        {"kind": mail.kind, "job_id": job_id, "mail_from": return_path, "rcpt_to": mail.to,
         "message_id": mail.message_id, "body": mail.data} for mail, job_id in mails])


def enqueue(session: Session, mail: Rendered, *, return_path: str, job_id: int | None = None,
            delivery_id: int | None = None) -> OutboxMail:
    return rows.add(session, kind=mail.kind, job_id=job_id, delivery_id=delivery_id,
                    mail_from=return_path, rcpt_to=mail.to, message_id=mail.message_id,
                    body=mail.data)


def backoff(tries: int, age: timedelta, first: float = 5.0) -> timedelta:
    """Delay before try number `tries + 1`."""
    if age < timedelta(hours=1):
        return timedelta(seconds=min(first * 2 ** min(max(tries - 1, 0), 16), 60))
    return timedelta(minutes=5)


def mark_sent(store: Store, mail_id: int) -> None:
    mark_sent_many(store, [mail_id])


def mark_failed(store: Store, mail: Claimed, error: str, give_up: timedelta,
                permanent: bool = False, first: float = 5.0) -> bool:
    """Record a failed try; returns True when the mail is now dead."""
    now = utcnow()
    tries = mail.tries + 1
    age = now - mail.created_at
    dead = permanent or age >= give_up
    rows.mark_failed(store, mail.id, tries=tries, error=error,
                     retry_at=now + backoff(tries, age, first), dead_at=now if dead else None)
    return dead


class OutboxSender:
    """Sends due outbox rows to the smarthost on one SMTP session, kept open while there is
    mail to send (checked with NOOP before each batch) and closed after `KEEP_IDLE` seconds
    without any."""

    KEEP_IDLE = 10.0  # seconds an idle session stays open

    def __init__(self, store: Store, settings: NotifySettings, *, owner: str):
        self.store = store
        self.settings = settings
        self.owner = owner
        self.wakeup = asyncio.Event()
        self.host, self.port = split_hostport(settings.smarthost)
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0

    def wake(self) -> None:
        self.wakeup.set()

    async def _session(self) -> aiosmtplib.SMTP:
        """The open session if the smarthost still answers on it, else a new one."""
        client, self._client = self._client, None
        if client is not None:
            if client.is_connected:
                try:
                    await client.noop()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
                else:
                    self._client = client
                    return client
            else:
                client.close()
        client = await self._connect()
        self._client = client
        return client

    async def close(self) -> None:
        """QUIT the open session, if any."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await asyncio.wait_for(client.quit(), timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        """One session for many mails: a new connection per mail costs about 30 %."""
        tls = self.settings.smarthost_tls
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port,
                                 timeout=self.settings.smtp_timeout,
                                 local_hostname=socket.getfqdn(), use_tls=tls == "tls",
                                 start_tls=tls == "starttls")
        await client.connect()
        if self.settings.smarthost_user:
            await client.login(self.settings.smarthost_user, self.settings.smarthost_secret())
        return client

    async def _failed(self, mail: Claimed, error: str, give_up: timedelta, *,
                      permanent: bool) -> None:
        dead = await asyncio.to_thread(mark_failed, self.store, mail, error, give_up, permanent,
                                       self.settings.retry_first)
        metrics.outbox_result("dead" if dead else "failed")
        log.warning("outbox_refused", message_id=mail.message_id, dead=dead, error=error)

    async def _post_webhooks(self, hooks: list[Claimed], give_up: timedelta) -> int:
        sent = 0
        for hook in hooks:
            secret = await asyncio.to_thread(rows.webhook_secret, self.store, hook.job_id)
            try:
                status = await asyncio.to_thread(post_webhook, hook.rcpt_to, hook.body,
                                                 secret, self.settings.webhook_timeout)
            except OSError as exc:
                status, error = 0, str(exc)
            else:
                error = f"HTTP {status}"
            if 200 <= status < 300:
                await asyncio.to_thread(mark_sent, self.store, hook.id)
                metrics.outbox_result("sent")
                sent += 1
                continue
            permanent = 400 <= status < 500 and status not in (408, 425, 429)
            dead = await asyncio.to_thread(mark_failed, self.store, hook, error, give_up,
                                           permanent, self.settings.retry_first)
            metrics.outbox_result("dead" if dead else "failed")
            log.warning("webhook_failed", outbox_id=hook.id, status=status, dead=dead)
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    sent = await self.send_due()
                except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                    log.exception("outbox_loop_error")
                    sent = 0
                if sent:
                    continue
                if self._client is not None and (
                        time.monotonic() - self._last_used >= self.KEEP_IDLE):
                    await self.close()
                await until_woken(stop, self.wakeup, self.settings.poll_interval)
        finally:
            await self.close()

    async def send_due(self, limit: int = 50) -> int:
        lease = timedelta(seconds=max(self.settings.smtp_timeout * 2, 10))
        claimed = await asyncio.to_thread(claim, self.store, self.owner, limit, lease)
        if not claimed:
            return 0
        give_up = timedelta(seconds=self.settings.give_up)
        hooks = [c for c in claimed if c.kind == WEBHOOK]
        batch = [c for c in claimed if c.kind != WEBHOOK]
        done = 0
        if hooks:
            done += await self._post_webhooks(hooks, give_up)
        if not batch:
            return done
        try:
            client = await self._session()
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("smarthost_unreachable", smarthost=self.settings.smarthost,
                        error=str(exc), waiting=len(batch))
            for mail in batch:
                dead = await asyncio.to_thread(mark_failed, self.store, mail, str(exc), give_up,
                                               False, self.settings.retry_first)
                metrics.outbox_result("dead" if dead else "failed")
            return done
        sent_ids: list[int] = []
        pending = list(batch)
        try:
            while pending:
                mail = pending[0]
                try:
                    await client.sendmail(mail.mail_from, [mail.rcpt_to], mail.body,
                                          mail_options=_utf8_options(mail))
                except aiosmtplib.SMTPNotSupported as exc:  # a UTF-8 address, no SMTPUTF8
                    await self._failed(mail, str(exc), give_up, permanent=True)
                    pending.pop(0)
                    continue
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    codes = [getattr(e, "code", 0) for e in exc.recipients]
                    await self._failed(mail, str(exc), give_up,
                                       permanent=all(500 <= c < 600 for c in codes))
                    pending.pop(0)
                    continue
                except aiosmtplib.SMTPResponseException as exc:
                    await self._failed(mail, str(exc), give_up,
                                       permanent=500 <= exc.code < 600)
                    pending.pop(0)
                    if not client.is_connected:
                        break
                    continue
                pending.pop(0)
                sent_ids.append(mail.id)
                log.info("outbox_sent", job_id=mail.job_id, outbox_id=mail.id,
                         sent_message_id=mail.message_id)
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("smarthost_failed", error=str(exc))
            self._client = None
            client.close()
        except BaseException:
            # Cancelled (shutdown) or a bug mid-batch: drop the session, and still mark what
            # the smarthost took, so that only the mail in flight can be sent twice.
            self._client = None
            client.close()
            try:
                mark_sent_many(self.store, sent_ids)
            except Exception:  # noqa: BLE001 - keep the first error; leases expire anyway
                log.exception("outbox_mark_failed", waiting=len(sent_ids))
            raise
        self._last_used = time.monotonic()
        if self._client is not None and not client.is_connected:
            self._client = None
        # One transaction marks the batch: a crash before it re-sends these mails, with the
        # same Message-IDs (at-least-once; see docs/operator.md).
        await asyncio.to_thread(mark_sent_many, self.store, sent_ids)
        metrics.outbox_result("sent", len(sent_ids))
        for mail in pending:  # the connection broke: try them again after the back-off
            await self._failed(mail, "connection to the smarthost lost", give_up,
                               permanent=False)
        sent = done + len(sent_ids)
        return sent


def _utf8_options(mail: Claimed) -> list[str]:
    """SMTPUTF8 for a UTF-8 address (an account such as pépé@exemple.fr): aiosmtplib
    sends addresses in ASCII unless asked."""
    if mail.rcpt_to.isascii() and mail.mail_from.isascii():
        return []
    return ["SMTPUTF8"]
