"""Office files (DOC, DOCX, ODT, RTF, XLS, XLSX) → PDF with LibreOffice, when it is installed.

LibreOffice cannot run in the warm sandbox worker (it writes a profile and its output,
the worker may write no file), so each conversion is a child of its own with limits of
its own: a fresh temporary directory holding the document, the output and a profile of
its own (`-env:UserInstallation`, so two conversions never share or lock one), its own
process group (killed whole at the deadline), CPU and file-size limits, no core dumps,
and an environment with nothing of ours but PATH. The PDF it makes is then checked and
rendered in the sandbox worker like any other PDF (mailgw.documents.checks).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mailgw.documents.fax_input import OFFICE_EXTENSIONS

MAX_OUTPUT = 64 << 20  # a converted PDF larger than this is refused
CPU_SECONDS = 60


class OfficeError(Exception):
    """The conversion failed, timed out or made nothing (the document's fault)."""


def soffice() -> str | None:
    """LibreOffice's program on PATH, if any."""
    return shutil.which("soffice") or shutil.which("libreoffice")


# The limits are set by a small Python step that then becomes LibreOffice (exec): no
# preexec_fn, which is unsafe in a threaded process such as intake.
_LIMITED = ("import os, resource, sys\n"
            "for which, value in ((resource.RLIMIT_CPU, {cpu}), (resource.RLIMIT_FSIZE, {fsize}),"
            " (resource.RLIMIT_CORE, 0)):\n"
            "    resource.setrlimit(which, (value, value))\n"
            "os.execv(sys.argv[1], sys.argv[1:])\n")


def to_pdf(data: bytes, filename: str | None, *, timeout: float = 60.0) -> bytes:
    """The document converted to PDF; OfficeError when LibreOffice fails or takes too long."""
    program = soffice()
    if program is None:
        raise OfficeError("LibreOffice (soffice) is not installed")
    name = (filename or "").lower()
    ext = next((e for e in OFFICE_EXTENSIONS if name.endswith(e)), ".docx")
    work = Path(tempfile.mkdtemp(prefix="mailgw-office-"))
    try:
        source = work / f"document{ext}"
        source.write_bytes(data)
        out = work / "out"
        out.mkdir()
        limited = _LIMITED.format(cpu=CPU_SECONDS, fsize=MAX_OUTPUT * 4)
        cmd = [sys.executable, "-c", limited, program,
               f"-env:UserInstallation={(work / 'profile').as_uri()}", "--headless",
               "--invisible", "--norestore", "--nolockcheck", "--nodefault",
               "--convert-to", "pdf", "--outdir", str(out), str(source)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
               "LANG": "C.UTF-8"}
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise OfficeError(f"LibreOffice took more than {timeout:g} s") from None
        finally:
            _kill_group(proc)
        result = out / "document.pdf"
        if proc.returncode != 0 or not result.is_file():
            raise OfficeError(f"LibreOffice could not convert it (exit {proc.returncode})")
        if result.stat().st_size > MAX_OUTPUT:
            raise OfficeError("the converted PDF is too large")
        return result.read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """LibreOffice starts helpers (oosplash → soffice.bin): end the whole group, reap."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
