"""An asyncio SMTP load generator that is not the bottleneck: distinct mails, N sessions.

Postfix's `smtp-source` repeats its `-F` file byte for byte, so a run of distinct mails (each
its own Message-ID, each a new job for mailgw) needed one `smtp-source` process per mail,
and the process start-up made the baseline (raw aiosmtpd) client-bound. Here every mail is
built before the clock starts (own Message-ID, CRLF line ends, dot-stuffed, terminated), and
`sessions` coroutines send them over raw asyncio streams, one command and one reply at a
time (no PIPELINING, as `smtp-source` against aiosmtpd), `per_connection` mails per
connection (1 = a connection per mail, as `smtp-source` without `-d`).

The client's own CPU is the event loop thread's `time.thread_time()`, so the figure holds
when the module runs inside a bigger process (bench/intake.py). `--client aiosmtplib`
sends the same mails with aiosmtplib, to compare the two clients' CPU per mail.

    .venv/bin/python bench/smtp_load.py 127.0.0.1:2525 --count 2000 --sessions 10
    .venv/bin/python bench/smtp_load.py 127.0.0.1:2525 --file fax.eml --reuse 10 --json -
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPLY_TIMEOUT = 300.0  # seconds for any one reply (a 10 MB DATA on a loaded machine)
CONNECT_TIMEOUT = 10.0
_MESSAGE_ID = re.compile(rb"^message-id:.*(?:\r?\n[ \t].*)*\r?\n", re.IGNORECASE | re.MULTILINE)


# -- the mails, built before the clock -------------------------------------------------------

def wire(mail: bytes) -> bytes:
    """A message as DATA sends it: CRLF line ends, lines starting with a dot doubled, then
    the terminating CRLF . CRLF."""
    text = mail.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def distinct(template: bytes, count: int, tag: str = "load") -> list[bytes]:
    """`count` copies of `template` ready for the wire, each with its own Message-ID (the
    template's own, if any, is dropped; the new one goes first in the header)."""
    head, sep, body = template.partition(b"\n\n") if b"\r\n\r\n" not in template \
        else template.partition(b"\r\n\r\n")
    head = _MESSAGE_ID.sub(b"", head + b"\n").rstrip(b"\r\n")
    start = time.time_ns()
    return [wire(b"Message-ID: <%s.%d.%d@smtp-load.invalid>\n" % (tag.encode(), start, n)
                 + head + sep + body) for n in range(count)]


def plain_mail(size: int, sender: str = "load@example.com", rcpt: str = "sink@localhost",
               subject: str = "smtp_load") -> bytes:
    """A plain-text mail of about `size` bytes (lines of 76 characters)."""
    head = f"From: {sender}\nTo: {rcpt}\nSubject: {subject}\n\n".encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrst\n"
    return head + line * max(1, (size - len(head)) // len(line))


# -- the load ------------------------------------------------------------------------------

@dataclass
class Result:
    mails: int  # offered
    accepted: int = 0  # 2xx after the data
    deferred: int = 0  # 4xx at any step (a real MTA would retry)
    refused: int = 0  # 5xx at any step
    connections: int = 0
    unsent: int = 0  # never offered: every session gave up (the server went away)
    seconds: float = 0.0  # wall, first connect to last reply
    client_cpu: float = 0.0  # seconds of the event loop's thread
    errors: list[str] = field(default_factory=list)  # the first few, for the log

    @property
    def msgs_per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    @property
    def client_cpu_ms_per_msg(self) -> float:
        return self.client_cpu * 1000 / self.mails if self.mails else 0.0

    def note(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text[:300])

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "msgs_per_s": self.msgs_per_s,
                "client_cpu_ms_per_msg": self.client_cpu_ms_per_msg}


class _Closed(Exception):
    """The server closed the connection, or answered 421."""


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    async with asyncio.timeout(REPLY_TIMEOUT):
        while True:
            line = await reader.readline()
            if len(line) < 4:
                raise _Closed(f"connection closed ({line!r})")
            if line[3:4] != b"-":
                code = int(line[:3])
                if code == 421:
                    raise _Closed(line.decode(errors="replace").strip())
                return code, line


def _count(result: Result, code: int, line: bytes) -> None:
    if code >= 500:
        result.refused += 1
    else:
        result.deferred += 1
    result.note(line.decode(errors="replace").strip())


async def _connection(host: str, port: int, todo: deque[bytes], per_connection: int,
                      envelope: tuple[bytes, bytes, bytes], result: Result,
                      in_flight: list[int]) -> None:
    """One connection: greeting, EHLO, up to `per_connection` mails, QUIT. `in_flight[0]`
    is 1 while a mail taken from `todo` has no answer yet."""
    ehlo, mail_from, rcpt_to = envelope
    reader, writer = await asyncio.open_connection(host, port)
    result.connections += 1
    try:
        code, line = await _reply(reader)
        if code != 220:
            raise _Closed(line.decode(errors="replace").strip())
        writer.write(ehlo)
        await _reply(reader)
        for _ in range(per_connection):
            if not todo:
                break
            payload = todo.popleft()
            in_flight[0] = 1
            for command in (mail_from, rcpt_to, b"DATA\r\n"):
                writer.write(command)
                code, line = await _reply(reader)
                if code >= 400:
                    break
            else:
                writer.write(payload)
                code, line = await _reply(reader)
                if code < 400:
                    result.accepted += 1
                    in_flight[0] = 0
                    continue
            _count(result, code, line)
            in_flight[0] = 0
            writer.write(b"RSET\r\n")
            await _reply(reader)
        writer.write(b"QUIT\r\n")
        await _reply(reader)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def _session(host: str, port: int, todo: deque[bytes], per_connection: int,
                   envelope: tuple[bytes, bytes, bytes], result: Result) -> None:
    in_flight, failures = [0], 0
    while todo and failures < 5:  # five failed connections in a row: the server is gone
        left = len(todo)
        try:
            await _connection(host, port, todo, per_connection, envelope, result, in_flight)
        except (_Closed, OSError, TimeoutError, ValueError) as exc:
            result.deferred += in_flight[0]  # a mail whose answer never came
            in_flight[0] = 0
            result.note(f"{type(exc).__name__}: {exc}")
        failures = failures + 1 if len(todo) == left else 0


def loop_timeout(mails: int, sessions: int) -> float:
    """A bound on a whole run (the protocol client has no timer per reply, which would cost
    a timer handle per command): every mail as slow as REPLY_TIMEOUT / 10."""
    return REPLY_TIMEOUT + mails / max(1, sessions) * REPLY_TIMEOUT / 10


class _Client(asyncio.Protocol):
    """One connection as a state machine run from `data_received`: each reply writes the next
    command at once (no coroutine, no future per reply: the cheapest client per mail)."""

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.buffer = b""
        self.state = "greeting"
        self.sent = 0  # mails taken on this connection
        self.in_flight = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.load.result.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end + 1], self.buffer[end + 1:]
            if line[3:4] != b"-":
                self.reply(int(line[:3]), line)

    def reply(self, code: int, line: bytes) -> None:
        load, write = self.load, self.transport.write
        if code == 421 or (self.state == "greeting" and code != 220):
            load.result.note(line.decode(errors="replace").strip())
            self.transport.close()
        elif self.state in ("greeting", "ehlo"):
            if self.state == "greeting":
                write(load.ehlo)
                self.state = "ehlo"
            else:
                self.next_mail()
        elif code >= 400 and self.state in ("mail", "rcpt", "data", "dot"):
            _count(load.result, code, line)
            self.in_flight = False
            write(b"RSET\r\n")
            self.state = "rset"
        elif self.state == "mail":
            write(load.rcpt_to)
            self.state = "rcpt"
        elif self.state == "rcpt":
            write(b"DATA\r\n")
            self.state = "data"
        elif self.state == "data":
            write(self.payload)
            self.state = "dot"
        elif self.state in ("dot", "rset"):
            if self.state == "dot":
                load.result.accepted += 1
                self.in_flight = False
            self.next_mail()
        elif self.state == "quit":
            self.transport.close()

    def next_mail(self) -> None:
        if self.sent >= self.load.per_connection or not self.load.todo:
            self.transport.write(b"QUIT\r\n")
            self.state = "quit"
            return
        self.payload = self.load.todo.popleft()
        self.sent += 1
        self.in_flight = True
        self.transport.write(self.load.mail_from)
        self.state = "mail"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:  # its answer never came
            self.load.result.deferred += 1
            self.load.result.note(f"connection lost in state {self.state}: {exc}")
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class _Load:
    todo: deque[bytes]
    per_connection: int
    ehlo: bytes
    mail_from: bytes
    rcpt_to: bytes
    result: Result


async def _protocol_session(address: tuple[str, int], load: _Load) -> None:
    loop = asyncio.get_running_loop()
    failures = 0
    while load.todo and failures < 5:  # five failed connections in a row: the server is gone
        left = len(load.todo)
        try:
            # A blocking connect (bounded): on 127.0.0.1 the handshake completes inside the
            # call, which spares the event loop a writer registration and a round per mail.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            try:
                sock.connect(address)
                sock.setblocking(False)
                _, client = await loop.create_connection(lambda: _Client(load), sock=sock)
            except BaseException:
                sock.close()
                raise
            await client.done
        except OSError as exc:
            load.result.note(f"{type(exc).__name__}: {exc}")
        failures = failures + 1 if len(load.todo) == left else 0


async def send(host: str, port: int, mails: list[bytes], sessions: int,
               per_connection: int = 1, sender: str = "load@example.com",
               rcpt: str = "sink@localhost", helo: str = "smtp-load.invalid") -> Result:
    """Send every prepared mail (from `distinct` or `wire`) over `sessions` parallel
    sessions, `per_connection` mails per connection; wall time and the loop thread's CPU.
    Each connection is an asyncio.Protocol state machine (`_Client`)."""
    load = _Load(deque(mails), per_connection, f"EHLO {helo}\r\n".encode(),
                 f"MAIL FROM:<{sender}>\r\n".encode(), f"RCPT TO:<{rcpt}>\r\n".encode(),
                 Result(len(mails)))
    cpu0, start = time.thread_time(), time.perf_counter()
    address = (socket.gethostbyname(host), port)
    watchdog = loop_timeout(len(mails), sessions)
    async with asyncio.timeout(watchdog):
        await asyncio.gather(*(_protocol_session(address, load)
                               for _ in range(min(sessions, len(mails)))))
    load.result.seconds = time.perf_counter() - start
    load.result.client_cpu = time.thread_time() - cpu0
    load.result.unsent = len(load.todo)
    return load.result


async def send_streams(host: str, port: int, mails: list[bytes], sessions: int,
                       per_connection: int = 1, sender: str = "load@example.com",
                       rcpt: str = "sink@localhost", helo: str = "smtp-load.invalid"
                       ) -> Result:
    """As `send`, with asyncio's StreamReader/StreamWriter and a coroutine per session
    (about twice `send`'s CPU per mail; kept for the comparison)."""
    envelope = (f"EHLO {helo}\r\n".encode(), f"MAIL FROM:<{sender}>\r\n".encode(),
                f"RCPT TO:<{rcpt}>\r\n".encode())
    todo = deque(mails)
    result = Result(len(mails))
    cpu0, start = time.thread_time(), time.perf_counter()
    await asyncio.gather(*(_session(host, port, todo, per_connection, envelope, result)
                           for _ in range(min(sessions, len(mails)))))
    result.seconds = time.perf_counter() - start
    result.client_cpu = time.thread_time() - cpu0
    result.unsent = len(todo)
    return result


async def send_aiosmtplib(host: str, port: int, mails: list[bytes], sessions: int,
                          per_connection: int = 1, sender: str = "load@example.com",
                          rcpt: str = "sink@localhost",
                          helo: str = "smtp-load.invalid") -> Result:
    """The same load through aiosmtplib (for comparing the clients' CPU per mail)."""
    import aiosmtplib  # late import: only the comparison needs it

    bodies = deque(m[:-3].replace(b"\r\n..", b"\r\n.") for m in mails)  # undo wire()'s stuffing
    result = Result(len(mails))

    async def session() -> None:
        while bodies:
            smtp = aiosmtplib.SMTP(hostname=host, port=port, local_hostname=helo,
                                   use_tls=False, start_tls=False, timeout=REPLY_TIMEOUT)
            await smtp.connect()
            result.connections += 1
            try:
                for _ in range(per_connection):
                    if not bodies:
                        break
                    try:
                        await smtp.sendmail(sender, [rcpt], bodies.popleft())
                        result.accepted += 1
                    except aiosmtplib.SMTPResponseException as exc:
                        _count(result, exc.code, exc.message.encode())
                        await smtp.rset()
            finally:
                await smtp.quit()

    cpu0, start = time.thread_time(), time.perf_counter()
    await asyncio.gather(*(session() for _ in range(min(sessions, len(mails)))))
    result.seconds = time.perf_counter() - start
    result.client_cpu = time.thread_time() - cpu0
    return result


def run(host: str, port: int, mails: list[bytes], sessions: int, per_connection: int = 1,
        client: str = "protocol", **envelope: str) -> Result:
    """`send` (or `send_aiosmtplib`) from synchronous code: its own event loop."""
    fn = {"protocol": send, "streams": send_streams, "aiosmtplib": send_aiosmtplib}[client]
    return asyncio.run(fn(host, port, mails, sessions, per_connection, **envelope))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", help="HOST:PORT")
    ap.add_argument("--count", type=int, default=1000, help="mails to send")
    ap.add_argument("--sessions", type=int, default=10, help="parallel sessions")
    ap.add_argument("--reuse", type=int, default=1, help="mails per connection (1: one "
                    "connection per mail)")
    ap.add_argument("--file", type=Path, help="the mail to send (its Message-ID is replaced "
                    "in every copy); default: a plain text mail of --size bytes")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--from", dest="sender", default="load@example.com")
    ap.add_argument("--to", dest="rcpt", default="sink@localhost")
    ap.add_argument("--client", choices=("protocol", "streams", "aiosmtplib"),
                    default="protocol", help="protocol: asyncio.Protocol state machines "
                    "(the cheapest); streams: StreamReader/Writer; aiosmtplib")
    ap.add_argument("--json", help="write the result as JSON here (- for stdout)")
    args = ap.parse_args()
    host, _, port = args.target.rpartition(":")
    template = args.file.read_bytes() if args.file else plain_mail(args.size, args.sender,
                                                                   args.rcpt)
    mails = distinct(template, args.count)  # before the clock
    result = run(host or "127.0.0.1", int(port), mails, args.sessions, args.reuse,
                 args.client, sender=args.sender, rcpt=args.rcpt)
    if args.json:
        text = json.dumps(result.as_dict(), indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    print(f"{result.accepted}/{result.mails} accepted in {result.seconds:.2f} s: "
          f"{result.msgs_per_s:.1f} msgs/s, client CPU {result.client_cpu_ms_per_msg:.3f} "
          f"ms/mail, {result.connections} connections, {result.deferred} deferred, "
          f"{result.refused} refused", file=sys.stderr)
    for error in result.errors:
        print(f"  {error}", file=sys.stderr)
    return 0 if result.accepted == result.mails else 1


if __name__ == "__main__":
    sys.exit(main())
