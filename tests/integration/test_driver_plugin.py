"""A driver added from one file (tests/echo_driver.py) and one registry line: the config
reads its table (file and environment), check-config asks it for its problems, and a fax
mail goes through the whole pipeline with it (SMTP → intake → dispatch → notice)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from mailgw.dispatch.drivers import registry
from mailgw.ops import config
from mailgw.store import Attempt, Delivery
from mailgw.store.provider_events import StoreProviderEvents
from tests.conftest import PASSWORD, fax_message
from tests.echo_driver import EchoDriver, EchoSettings
from tests.integration.test_cloud_drivers import pdf
from tests.integration.test_end_to_end import send


@pytest.fixture
def echo() -> Iterator[None]:
    registry.register("echo", EchoSettings, EchoDriver)  # the one registry line
    yield
    registry.unregister("echo")


def test_its_table_is_read_and_checked(echo: None) -> None:
    s = config.load(search=False, environ={"MAILGW_DRIVERS__ECHO__LINES": "3"},
                    overrides={"dispatch": {"driver": "echo"},
                               "drivers": {"echo": {"csid": "+33 1 70 70 99 01"}}})
    assert isinstance(s.drivers.echo, EchoSettings)
    assert (s.drivers.echo.csid, s.drivers["echo"].lines) == ("+33 1 70 70 99 01", 3)
    with pytest.raises(config.ConfigError) as bad:
        config.load(search=False, environ={}, overrides={
            "dispatch": {"driver": "echo"},
            "drivers": {"echo": {"csid": "X" * 21, "retry": "often=1", "colour": "red"}}})
    assert any(p.startswith("drivers.echo.colour: unknown key") for p in bad.value.problems)
    with pytest.raises(config.ConfigError) as bad:
        config.load(search=False, environ={}, overrides={
            "dispatch": {"driver": "echo"},
            "drivers": {"echo": {"csid": "X" * 21, "retry": "often=1"}}})
    assert "drivers.echo.csid: at most 20 characters (T.30's CSI)" in bad.value.problems
    assert any(p.startswith("drivers.echo.retry: 'often=1'") for p in bad.value.problems)


def test_unregistered_it_is_unknown() -> None:
    with pytest.raises(config.ConfigError, match="dispatch.driver: unknown driver 'echo'"):
        config.load(search=False, environ={}, overrides={"dispatch": {"driver": "echo"}})
    with pytest.raises(config.ConfigError, match="drivers.echo: unknown section"):
        config.load(search=False, environ={}, overrides={"drivers": {"echo": {"lines": 1}}})


def test_a_fax_mail_through_the_echo_driver(echo: None, make_app: Any, sink: Any) -> None:
    app = make_app(dispatch={"driver": "echo"}, drivers={"echo": {"csid": "ECHO 42"}})
    app.add_account()
    send(app.port, fax_message(f"{PASSWORD}:0170709901:REF-1", pdf(2)))
    mails = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                          what="the notice")
    notice = next(m for m in mails if m["X-Mailgw-Kind"] == "notice")
    assert notice["X-Mailgw-State"] == "delivered"
    assert "ECHO 42" in notice.get_body(("plain",)).get_content()
    with app.store.read() as s:
        (d,) = s.scalars(select(Delivery))
        assert (d.state, d.pages_sent, d.csid) == ("delivered", 2, "ECHO 42")
        (attempt,) = s.scalars(select(Attempt).where(Attempt.delivery_id == d.id))
        assert attempt.driver == "echo"
        ref = attempt.provider_ref
    (event,) = StoreProviderEvents(lambda: app.store).events("echo", ref)
    assert event.payload == {"number": "+33170709901", "pages": 2}
