"""`account set --inbound-number`: numbers (DIDs) mapped to accounts, as the operator types them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import cfg, mailgw  # noqa: F401 - the fixture

PW = "Pw-inbound-42\n"


def test_inbound_numbers_mapped_listed_unique_and_removed(cfg: Path) -> None:  # noqa: F811
    c = ["--config", str(cfg)]
    for email in ("a@example.com", "b@example.com"):
        r = mailgw("account", "add", email, "--password-stdin", "--region", "FR", *c, stdin=PW)
        assert r.returncode == 0, r.stderr
    r = mailgw("account", "set", "a@example.com", "--inbound-number", "01 70 70 99 01",
               "--inbound-number", "+33170709902", *c)
    assert r.returncode == 0, r.stderr
    assert "inbound numbers +33170709901,+33170709902" in r.stdout
    # one account per number
    r = mailgw("account", "set", "b@example.com", "--inbound-number", "+33170709901", *c)
    assert r.returncode == 1 and "already an inbound number of a@example.com" in r.stderr
    r = mailgw("account", "set", "b@example.com", "--inbound-number", "12", *c)
    assert r.returncode == 1 and "phone number" in r.stderr
    r = mailgw("account", "set", "a@example.com", "--no-inbound-number", "+33170709902", *c)
    assert r.returncode == 0 and "inbound numbers +33170709901" in r.stdout, r.stderr
    r = mailgw("account", "set", "a@example.com", "--no-inbound-number", "+33170709902", *c)
    assert r.returncode == 1 and "not an inbound number" in r.stderr
    listed = {a["email"]: a["inbound_numbers"]
              for a in json.loads(mailgw("account", "list", "--json", *c).stdout)}
    assert listed == {"a@example.com": ["+33170709901"], "b@example.com": []}
    assert "inbound=+33170709901" in mailgw("account", "list", *c).stdout
