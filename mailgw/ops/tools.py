"""What a role needs from the host beyond our Python dependencies, checked before it starts.

mailgw itself runs no system program: sounds are read with PyAV (FFmpeg's libraries in its
wheel), PDFs with pypdf, and HylaFAX is spoken to over TCP. What is left is listed here,
per role and driver, with the Debian package that brings it, so that `check-config` and
`serve` say it in one line and the role refuses to start: a missing program must never
turn into a 451 (or a failed job) for every mail.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import shutil
from collections.abc import Iterable
from dataclasses import dataclass

from mailgw.ops.config import Settings

EX_UNAVAILABLE = 69  # sysexits.h: `serve` when a role's needs are not met


@dataclass(frozen=True)
class Need:
    name: str  # a program looked up on PATH, or a Python module
    package: str  # the Debian package that provides it
    why: str
    module: bool = False


SOUND = Need("av", "python3-av", "the smtp and imap roles read and convert sounds with PyAV "
             "(or: pip install av)", module=True)
GHOSTSCRIPT = Need("gs", "ghostscript", "the dispatch role sends through the HylaFAX on this "
                   "host (faxq is installed), which converts each PDF with it")
HYLAFAX_HERE = "faxq"  # HylaFAX's queue manager: found on PATH, HylaFAX runs on this host


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def needs(settings: Settings, roles: Iterable[str], path: str | None = None) -> list[Need]:
    """What `roles` need on this host with these settings (`path`: the PATH to look in)."""
    roles = set(roles)
    found: list[Need] = []
    if roles & {"smtp", "imap"}:
        found.append(SOUND)
    hylafax = settings.drivers.hylafax
    if ("dispatch" in roles and settings.dispatch.driver == "hylafax"
            and _loopback(hylafax.host) and shutil.which(HYLAFAX_HERE, path=path)):
        found.append(GHOSTSCRIPT)
    return found


def configured_roles(settings: Settings) -> tuple[str, ...]:
    """The roles `serve` runs without --roles: [serve] roles, plus imap when [imap] is
    enabled and http when [http] listen is set (explicit --roles are taken as given)."""
    roles = tuple(settings.serve.roles)
    if settings.imap.enabled and "imap" not in roles:
        roles += ("imap",)
    if settings.http.listen and "http" not in roles:
        roles += ("http",)
    return roles


def missing(settings: Settings, roles: Iterable[str], path: str | None = None) -> list[Need]:
    """The needs of `roles` that this host does not meet."""
    return [n for n in needs(settings, roles, path) if not _present(n, path)]


def _present(need: Need, path: str | None) -> bool:
    if need.module:
        return importlib.util.find_spec(need.name) is not None
    return shutil.which(need.name, path=path) is not None


def describe(lacking: list[Need]) -> str:
    """One line for the operator: each missing thing, its Debian package, why."""
    return "; ".join(f"{'Python module' if n.module else 'program'} {n.name} is missing "
                     f"(Debian package {n.package}): {n.why}" for n in lacking)
