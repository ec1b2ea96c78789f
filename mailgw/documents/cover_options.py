"""A fax's cover page and header line, asked for per account (`mailgw account set --cover yes
--header-line yes`) or per mail: a body line `cover: yes` / `header: yes` (`page de garde:`,
`en-tête:`, `титульная:`, `заголовок:`), read by the one options-block reader
(mailgw.accounts.body_options). Pure. The job keeps them in its options (`{"cover": "yes",
"header": "yes"}`, absent when off), and the dispatcher makes each delivery's fax with them
(mailgw.dispatch.faxdoc).
"""

from __future__ import annotations

from mailgw.accounts.body_options import Problem, read_switches, yes_no

COVER, HEADER = "cover", "header"
ALIASES = {"page-de-garde": COVER, "couverture": COVER, "garde": COVER, "титульная": COVER,
           "обложка": COVER, "header-line": HEADER, "en-tête": HEADER, "entête": HEADER,
           "en-tete": HEADER, "entete": HEADER, "bandeau": HEADER, "заголовок": HEADER}
parse = yes_no  # yes/no in en, fr or ru; None when it is neither


def check(value: str) -> bool:
    """For the CLI: yes or no, else ValueError."""
    got = parse(value)
    if got is None:
        raise ValueError(f"expected yes or no, got {value!r}")
    return got


def resolve(body: str, account_cover: bool = False, account_header: bool = False
            ) -> tuple[dict[str, str], tuple[Problem, ...]]:
    """The mail's `cover:` and `header:` lines over the account's settings (pure). A value
    that is neither yes nor no is reported and the account's setting is used."""
    chosen = {COVER: account_cover, HEADER: account_header}
    written, problems = read_switches(body, (COVER, HEADER), ALIASES)
    chosen.update(written)
    return {k: "yes" for k, on in chosen.items() if on}, problems


def wanted(options: dict[str, str] | None) -> tuple[bool, bool]:
    """(cover, header) from a job's stored options."""
    opts = options or {}
    return opts.get(COVER) == "yes", opts.get(HEADER) == "yes"
