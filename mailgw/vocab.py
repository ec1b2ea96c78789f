"""The words the code, the store, the CLI and the docs share: states, outcomes, channels and
languages. One place, so a new state or language is added once (pure: imports nothing).
"""

from __future__ import annotations

# -- delivery states: scheduled → queued → sending → delivered | partial | failed | cancelled |
# expired, with queued again (and a next_attempt_at) between retries.
SCHEDULED, QUEUED, SENDING = "scheduled", "queued", "sending"
DELIVERED, PARTIAL, FAILED, CANCELLED, EXPIRED = (
    "delivered", "partial", "failed", "cancelled", "expired")
FINAL_STATES = (DELIVERED, PARTIAL, FAILED, CANCELLED, EXPIRED)  # in the order people read
FINAL = frozenset(FINAL_STATES)
DELIVERY_STATES = (SCHEDULED, QUEUED, SENDING, *FINAL_STATES)
WAITING = (QUEUED, SCHEDULED)  # not claimed yet: due once next_attempt_at has passed
REACHED = (DELIVERED, PARTIAL)  # someone got the fax pages or heard the message

# -- job states: a job is finished once done or cancelled (its deliveries all final).
JOB_SCHEDULED, JOB_ACTIVE, JOB_DONE, JOB_CANCELLED = "scheduled", "active", "done", "cancelled"
JOB_STATES = (JOB_SCHEDULED, JOB_ACTIVE, JOB_DONE, JOB_CANCELLED)
JOB_FINISHED = (JOB_DONE, JOB_CANCELLED)

# -- job outcomes (derived from the deliveries), and the one word shown where a single word is
# wanted (OVH's).
IN_PROGRESS, DELIVERED_ALL, DELIVERED_NONE, PARTIALLY = (
    "in_progress", "delivered_all", "delivered_none", "partial")
OUTCOME_WORD = {IN_PROGRESS: "N/A", DELIVERED_ALL: "Success", PARTIALLY: "Partial success",
                DELIVERED_NONE: "Error"}

# -- channels and languages
FAX, VOICE = "fax", "voice"
CHANNELS = (FAX, VOICE)
LANGS = ("fr", "en", "ru")

# -- the header our own mail carries: intake ignores a mail that has it (no mail loops)
LOOP_HEADER = "X-Mailgw-Loop"
