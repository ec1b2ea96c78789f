"""A fake Class 2.0 fax modem on a pty, for driving the real HylaFAX `faxsend` in tests.

Usage: python fakemodem.py MODES.json EVENTS.jsonl

It prints the pty slave's path on stdout, then answers HylaFAX's AT commands. What a
call does is chosen by the dialled number, from MODES.json (re-read at every dial):

    {"default": {"mode": "ok", "csid": "+1 555 0100 REMOTE"},
     "numbers": {"0102": {"mode": "busy"}, "0103": {"mode": "drop", "after": 1}}}

A number matches the longest key it ends with; "times": N applies the mode to the first N
calls only (then the default's mode). Modes: ok, busy, nocarrier, noanswer,
nodialtone, drop (the line drops while page `after`+1 is sent, after `after` pages were
confirmed) and hold (like ok, but the last page is confirmed only once the file `release`
next to MODES.json exists: the call stays in progress for cancel and restart tests).
Each call ends with one JSON line in EVENTS.jsonl: number, mode, csid, pages, result; a
held call first writes {"event": "holding", "number": …}.

Honesty limit: no T.30 audio is exchanged; the modem reports what the mode says.
HylaFAX's side (queue, conversion, Class 2.0 driver, logs, states) is real.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import select
import sys
import termios
import tty

DLE, ETX = 0x10, 0x03
CAPS = b"(0,1),(0-5),(0-4),(0-2),(0),(0),(0),(0-7)"


class FakeModem:
    def __init__(self, modes_path: str, events_path: str):
        self.modes_path = modes_path
        self.events_path = events_path
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # we keep the slave open: reads on the master never hit EIO
        attrs = termios.tcgetattr(self.master)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.master, termios.TCSANOW, attrs)
        self.path = os.ttyname(self.slave)
        os.chown(self.path, pwd.getpwnam("uucp").pw_uid, grp.getgrnam("dialout").gr_gid)
        os.chmod(self.path, 0o666)
        self.buf = b""
        self.data_mode = False
        self.call: dict[str, object] | None = None
        self.dials: dict[str, int] = {}  # calls per matched key, for "times"
        self.modes_text = ""
        self.held: int | None = None  # the end-of-page marker of a held last page
        self.release = os.path.join(os.path.dirname(os.path.abspath(modes_path)), "release")

    # -- output ------------------------------------------------------------------------
    def send(self, *lines: str) -> None:
        os.write(self.master, b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines))

    def write_event(self, record: dict[str, object]) -> None:
        with open(self.events_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def event(self, result: str) -> None:
        if self.call is None:
            return
        self.call["result"] = result
        self.write_event(self.call)
        self.call = None

    # -- modes ---------------------------------------------------------------------------
    def mode_for(self, number: str) -> dict[str, object]:
        try:
            with open(self.modes_path, encoding="utf-8") as f:
                text = f.read()
            modes = json.loads(text)
        except (OSError, ValueError):
            text, modes = "", {}
        if text != self.modes_text:  # new modes: "times" counts start again
            self.modes_text, self.dials = text, {}
        default = dict(modes.get("default") or {"mode": "ok", "csid": "FAKE REMOTE"})
        chosen, best, match = default, -1, ""
        for key, value in (modes.get("numbers") or {}).items():
            if number.endswith(key) and len(key) > best:
                best, match = len(key), key
                chosen = {**default, **value}
        self.dials[match] = self.dials.get(match, 0) + 1
        if "times" in chosen and self.dials[match] > int(str(chosen["times"])):
            chosen = {**chosen, "mode": default.get("mode", "ok")}  # only the first N calls
        return chosen

    # -- commands ------------------------------------------------------------------------
    def command(self, line: str) -> None:
        up = line.upper()
        self.held = None  # a command while a page is held: the call was abandoned
        if up.startswith("ATD"):
            return self.dial(line[3:].lstrip("TtPp").strip())
        if up.startswith("ATH") or up.startswith("ATZ"):
            self.event("hangup" if self.call and self.call.get("pages") else "aborted")
            return self.send("OK")
        if up == "AT+FDT":
            return self.transmit()
        if up == "AT+FPS?":
            return self.send("1", "OK")
        if up == "AT+FCC=?":
            return self.send(CAPS.decode(), "OK")
        if up == "AT+FCLASS=?":
            return self.send("0,2.0", "OK")
        if up in ("AT+FMI?", "ATI3", "AT+FMFR?"):
            return self.send("MAILGW", "OK")
        if up in ("AT+FMM?", "AT+FMDL?", "ATI0"):
            return self.send("FAKE CLASS 2.0", "OK")
        if up in ("AT+FMR?", "AT+FREV?"):
            return self.send("1.0", "OK")
        if up.endswith("=?"):
            return self.send("(0-1)", "OK")
        return self.send("OK")

    def dial(self, number: str) -> None:
        mode = self.mode_for(number)
        self.call = {"number": number, "mode": mode.get("mode", "ok"),
                     "csid": mode.get("csid", "FAKE REMOTE"), "pages": 0,
                     "after": int(str(mode.get("after", 1)))}
        failure = {"busy": "BUSY", "nocarrier": "NO CARRIER", "noanswer": "NO ANSWER",
                   "nodialtone": "NO DIALTONE"}.get(str(self.call["mode"]))
        if failure:
            self.send(failure)
            return self.event(str(self.call["mode"]))
        self.send("+FCO", f'+FCI:"{self.call["csid"]}"', "+FIS:1,5,0,2,0,0,0,0", "OK")

    def transmit(self) -> None:
        if self.call is None:
            return self.send("ERROR")
        self.send("+FCS:1,5,0,2,0,0,0,0", "CONNECT")
        self.data_mode = True

    def page_done(self, marker: int) -> None:
        self.data_mode = False
        call = self.call
        assert call is not None
        mode = call["mode"]
        if mode == "hold" and marker == ord(".") and not os.path.exists(self.release):
            self.held = marker
            return self.write_event({"event": "holding", "number": call["number"]})
        if mode == "drop" and int(str(call["pages"])) >= int(str(call["after"])):
            self.send("+FHS:52", "ERROR")  # no response to the post-page message
            return self.event("dropped")
        call["pages"] = int(str(call["pages"])) + 1
        if marker == ord("."):
            self.send("+FPS:1,0,0,0,0", "+FHS:00", "OK")
            return self.event("ok")
        self.send("+FPS:1,0,0,0,0", "OK")

    # -- the byte pump -------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.buf += data
        while self.buf:
            if self.data_mode:
                i = 0
                while i < len(self.buf) - 1:
                    if self.buf[i] == DLE:
                        nxt = self.buf[i + 1]
                        if nxt in (ord(","), ord("."), ord(";"), ETX):
                            self.buf = self.buf[i + 2:]
                            self.page_done(nxt)
                            break
                        i += 2
                        continue
                    i += 1
                else:
                    # keep a trailing DLE: its partner byte has not arrived yet
                    self.buf = self.buf[-1:] if self.buf[-1:] == bytes([DLE]) else b""
                    return
                continue
            end = self.buf.find(b"\r")
            if end < 0:
                if len(self.buf) > 4096:
                    self.buf = b""
                return
            line, self.buf = self.buf[:end], self.buf[end + 1:]
            text = line.decode("latin-1").strip(" \n\x11\x13\x00")
            if text:
                self.command(text)

    def run(self) -> None:
        print(self.path, flush=True)
        while True:
            ready, _, _ = select.select([self.master, sys.stdin], [], [],
                                        0.05 if self.held is not None else None)
            if self.held is not None and os.path.exists(self.release):
                marker, self.held = self.held, None
                self.call = {**(self.call or {}), "mode": "released"}
                self.page_done(marker)
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1024):
                return  # our parent closed stdin: stop
            if self.master in ready:
                self.feed(os.read(self.master, 4096))


if __name__ == "__main__":
    FakeModem(sys.argv[1], sys.argv[2]).run()
