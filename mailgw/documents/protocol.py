"""The wire between the sandbox (mailgw.documents.sandbox, the parent) and its worker
(mailgw.documents.worker, the child): both sides import it, neither imports the other.

On the worker's stdin/stdout (big-endian):
  request  = ">BIQdQB" (task-name length, cpu seconds, memory bytes, wall seconds,
             data length, 1 to fork), then the task name; the data is in the memfd given
             as `--worker FD`, written by the parent before the request. The memory is a
             budget above the worker's own baseline (mailgw.documents.worker);
  response = ">BQ" (status, payload length), then the payload: the task's JSON answer
             (status 0) or a short reason in UTF-8 (status 1: the task failed); status
             has RETIRING (0x80) added when the worker exits after this answer.
The worker greets with a response of status 0 and no payload once it is ready.
"""

from __future__ import annotations

import signal
import struct

REQUEST = struct.Struct(">BIQdQB")
RESPONSE = struct.Struct(">BQ")
OK, FAILED = 0, 1
RETIRING = 0x80  # added to the status: the worker exits after this answer
MAX_ANSWER = 256 << 20  # a merged PDF comes back base64-encoded

# The test hook: comma-separated modules, each with a TASKS dict, whose tasks the worker
# serves besides its own (tests/sandbox_selftest.py: tasks that spin, allocate, crash).
# Only tests set it; the sandbox passes it on to the workers it starts.
EXTRA_TASKS_ENV = "MAILGW_SANDBOX_EXTRA_TASKS"


def killed_by(sig: int) -> str:
    """Why a process reading a document was ended by `sig`: the limit the kernel enforced
    (CPU, wall clock in the worker's own timer) or the signal's name."""
    if sig == signal.SIGXCPU:
        return "killed: over the CPU time limit"
    if sig == signal.SIGALRM:
        return "took too long"
    try:
        return f"killed by {signal.Signals(sig).name}"
    except ValueError:
        return f"killed by signal {sig}"
