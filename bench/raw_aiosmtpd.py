"""The baseline target: aiosmtpd built exactly as mailgw's listener, answering 250 to DATA.

`python bench/raw_aiosmtpd.py PORT` — runs until SIGTERM; prints `ready` once listening.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP


class Accept:
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 OK"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    handler = Accept()

    def factory() -> SMTP:
        return SMTP(handler, data_size_limit=25_000_000, timeout=60, enable_SMTPUTF8=True,
                    decode_data=False, loop=loop)

    server = await loop.create_server(factory, host="127.0.0.1", port=port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
