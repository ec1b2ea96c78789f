"""`mailgw postfix-config`: the Postfix settings that match mailgw's own configuration.

Postfix in front of mailgw needs to know four things mailgw already knows: which domains
and addresses to relay to it (transport map), which recipients exist (relay recipient map:
without it Postfix accepts any `…@gw` address and bounces it later, backscatter), how
large a mail may be (Postfix's 10 MB default caps PDFs near 7.4 MB), and where mailgw
listens. Written from the settings, they cannot drift from them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from mailgw.ops.config import Settings, split_hostport
from mailgw.smtp.relay import greeting_name

TRANSPORT = "mailgw_transport"
RECIPIENTS = "mailgw_recipients"
NUMBERS = "mailgw_recipients.regexp"
POSTFIX_LIMITS = 51_200_000  # Postfix's default mailbox_size_limit and virtual_mailbox_limit
# Postfix counts a mail with LF line ends and mailgw with CRLF (plus dot-stuffing): about
# 1/77 more on base64 lines, more on short lines. This margin keeps what Postfix accepts
# under mailgw's limit, so Postfix refuses a mail too large itself, during its own SMTP
# dialogue, instead of relaying it and bouncing mailgw's 552 (which quotes the headers).
SIZE_SHARE = 0.95
SIZE_SLACK = 64 * 1024
_ERE_SPECIAL = set(".[]()*+?{}|^$\\")


@dataclass
class PostfixConfig:
    main_cf: list[str]  # lines for main.cf, comments included
    files: dict[str, str] = field(default_factory=dict)  # map file name -> its text
    hashed: tuple[str, ...] = (TRANSPORT, RECIPIENTS)  # the maps that need postmap

    def text(self, directory: Path) -> str:
        out = [f"# Add to {directory / 'main.cf'} (merge with values you already have):",
               *self.main_cf, ""]
        for name, body in self.files.items():
            path = directory / name
            then = f"   (then: postmap {path})" if name in self.hashed else ""
            out += [f"# ---- {path}{then}", body.rstrip("\n"), ""]
        return "\n".join(out)


def nexthop(listen: str) -> str:
    """`smtp:[host]:port` for mailgw's listen address (a wildcard becomes loopback)."""
    host, port = split_hostport(listen)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"smtp:[{host}]:{port}"
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"smtp:[{address}]:{port}"


def postfix_size_limit(max_message_size: int) -> int:
    return max(int(max_message_size * SIZE_SHARE) - SIZE_SLACK, 1_000_000)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ere(text: str) -> str:
    return "".join("\\" + c if c in _ERE_SPECIAL else c for c in text)


def render(settings: Settings, directory: Path) -> PostfixConfig:
    gw, smtp = settings.gateway, settings.smtp
    domain = gw.domain.lower()
    addresses = [a.lower() for a in (gw.fax_address, gw.voice_address)]
    domains = list(dict.fromkeys([domain] + [a.rpartition("@")[2] for a in addresses]))
    hop = nexthop(smtp.listen)
    limit = postfix_size_limit(smtp.max_message_size)
    attachment = limit * 3 // 4 // 1_000_000
    name = greeting_name(smtp.hostname, gw.domain)
    main = [
        f"relay_domains = {', '.join(domains)}",
        f"transport_maps = hash:{directory / TRANSPORT}",
        f"relay_recipient_maps = hash:{directory / RECIPIENTS}, regexp:{directory / NUMBERS}",
        f"# mailgw takes mails up to {smtp.max_message_size} bytes ([smtp] max_message_size);"
        f" Postfix's limit is a little lower (line ends, headers); base64 adds a third, so "
        f"documents of up to about {attachment} MB",
        f"message_size_limit = {limit}",
    ]
    if limit > POSTFIX_LIMITS:  # Postfix will not start with a mailbox limit below it
        main += [f"mailbox_size_limit = {limit}", f"virtual_mailbox_limit = {limit}"]
    main += [
        f"# mailgw greets Postfix as {name} ([smtp] hostname): Postfix's myhostname must be "
        "another name, or it refuses to relay (\"loops back to myself\")",
    ]
    if smtp.trusted_relays:
        main.append(f"# mailgw trusts the Received header of: {', '.join(smtp.trusted_relays)}"
                    " ([smtp] trusted_relays): this Postfix's address must be among them")
    else:
        source = hop.split("[", 1)[1].split("]", 1)[0]
        source = source if _is_loopback(source) else "<this Postfix's address>"
        main.append(f"# and in mailgw's config: [smtp] trusted_relays = [\"{source}\"] (none "
                    "yet: every mail would seem to come from Postfix, and refusals bounce)")
    transport = [f"{domain}\t{hop}"]
    transport += [f"{a}\t{hop}" for a in addresses if a.rpartition("@")[2] != domain]
    recipients = [f"{a}\tOK" for a in dict.fromkeys(addresses)]
    # <number>@domain as mailgw reads it (decide.channel_of): 6 to 17 digits, with +, . and
    # - anywhere; Postfix's regexp tables are case-insensitive
    numbers = [f"/^[+.-]*([0-9][+.-]*){{6,17}}@{_ere(domain)}$/\tOK"]
    return PostfixConfig(main, {
        TRANSPORT: "\n".join(transport) + "\n",
        RECIPIENTS: "\n".join(recipients) + "\n",
        NUMBERS: "\n".join(numbers) + "\n",
    })


def write(config: PostfixConfig, directory: Path) -> list[Path]:
    """The map files written into `directory` (postmap is the operator's, or Postfix's)."""
    written = []
    for name, body in config.files.items():
        path = directory / name
        path.write_text(body, encoding="utf-8")
        written.append(path)
    return written
