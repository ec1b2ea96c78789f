"""flood.Connections on its own (a fake clock, fake sessions): the per-client caps, the
rate's window, stress levels and who is told, DATA pressure, eviction, bounded memory; and
the settings that feed it."""

from __future__ import annotations

import pytest

from mailgw.ops import config, metrics
from mailgw.smtp import flood as flood_module
from mailgw.smtp.flood import FULL, PER_CLIENT, RATE, Connections, client_key, stress_levels


class FakeSession:
    def __init__(self, idle: float = 0.0, data: bool = False):
        self.transport = None
        self.idle, self.data = idle, data
        self.told = 0
        self.evicted = False

    def stress_began(self) -> None:
        self.told += 1

    def in_data(self) -> bool:
        return self.data

    def idle_for(self) -> float:
        return self.idle

    def evict(self) -> None:
        self.evicted = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_client_keys_and_stress_levels() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8::1") == client_key("2001:db8::2") == "2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key(None) == "?"
    assert stress_levels(200, 0.8) == (161, 140)
    assert stress_levels(40, 0.8) == (33, 28)
    assert stress_levels(20, 0.8) == (17, 14)
    assert stress_levels(2, 0.8) == (2, 1)
    assert stress_levels(1, 1.0) == (1, 0)


def refused(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("mailgw_smtp_connections_refused_total",
                                              {"reason": reason})
    return value or 0.0


def test_per_client_and_rate_caps_count_admitted_connections() -> None:
    before = refused("per_client"), refused("rate")
    clock = Clock()
    c = Connections(100, per_client=2, rate=3, clock=clock)
    a, b, d, e = (FakeSession() for _ in range(4))
    assert c.admit(a, "192.0.2.1") is None and c.admit(b, "192.0.2.1") is None
    assert c.admit(d, "192.0.2.1") == PER_CLIENT  # refused: not counted in the rate
    assert c.admit(FakeSession(), "192.0.2.2") is None  # another client
    c.release(a)
    assert c.admit(d, "192.0.2.1") is None  # the third admitted in this minute
    c.release(b)
    c.release(d)
    assert c.admit(e, "192.0.2.1") == RATE
    assert (refused("per_client"), refused("rate")) == (before[0] + 1, before[1] + 1)
    clock.now += 60
    assert c.admit(e, "192.0.2.1") is None  # a new minute
    exempt = Connections(100, per_client=1, rate=1, exceptions=["10.0.0.0/8"], clock=clock)
    assert all(exempt.admit(FakeSession(), "10.1.2.3") is None for _ in range(3))
    assert all(exempt.admit(FakeSession(), "::ffff:10.1.2.3") is None for _ in range(3))
    assert exempt.admit(FakeSession(), "11.1.2.3") is None
    assert exempt.admit(FakeSession(), "11.1.2.3") == PER_CLIENT


def test_stress_begins_above_the_threshold_tells_every_session_and_ends_lower() -> None:
    c = Connections(10, threshold=0.8)
    sessions = [FakeSession() for _ in range(9)]
    for s in sessions[:8]:
        assert c.admit(s, "192.0.2.1") is None
    assert not c.under_stress and not c.stressed(sessions[0])
    assert all(s.told == 0 for s in sessions[:8])
    c.admit(sessions[8], "192.0.2.1")  # 9 of 10: above 80 %
    assert c.under_stress and all(s.told == 1 for s in sessions)
    assert metrics.REGISTRY.get_sample_value("mailgw_smtp_stress") == 1
    c.release(sessions[0])
    assert c.under_stress  # 8: not yet below the hysteresis
    c.release(sessions[1])
    assert not c.under_stress  # 7
    assert metrics.REGISTRY.get_sample_value("mailgw_smtp_stress") == 0


def test_flood_settings_are_checked() -> None:
    for smtp, key in (({"stress_threshold": 0}, "smtp.stress_threshold"),
                      ({"stress_threshold": 1.5}, "smtp.stress_threshold"),
                      ({"stress_timeout": 0}, "smtp.stress_timeout"),
                      ({"client_limit_exceptions": ["10.0.0.0/33"]},
                       "smtp.client_limit_exceptions")):
        with pytest.raises(config.ConfigError, match=key):
            config.load(search=False, environ={}, overrides={"smtp": smtp})
    s = config.load(search=False, environ={"MAILGW_SMTP__CLIENT_LIMIT_EXCEPTIONS":
                                           "127.0.0.1, 10.0.0.0/8"})
    assert s.smtp.client_limit_exceptions == ["127.0.0.1", "10.0.0.0/8"]


def test_a_client_near_its_own_cap_is_under_stress_alone() -> None:
    c = Connections(200, per_client=20)
    mine = [FakeSession() for _ in range(17)]
    other = FakeSession()
    c.admit(other, "192.0.2.9")
    for s in mine[:16]:
        c.admit(s, "192.0.2.1")
    assert not c.stressed(mine[0])
    c.admit(mine[16], "192.0.2.1")
    assert all(s.told == 1 for s in mine) and c.stressed(mine[0])
    assert other.told == 0 and not c.stressed(other) and not c.under_stress


def test_data_pressure_and_eviction() -> None:
    c = Connections(3, evict_after=5.0)
    old, fresh, data = FakeSession(idle=6), FakeSession(idle=1), FakeSession(idle=0, data=True)
    for s in (old, fresh, data):
        c.admit(s, "192.0.2.1")
    old.told = fresh.told = data.told = 0
    c.data_pressure()
    assert (old.told, fresh.told, data.told) == (0, 0, 1)
    newcomer = FakeSession()
    assert c.admit(newcomer, "192.0.2.2") is None  # the listener was full: `old` made room
    assert old.evicted and old not in c.protocols and c.open == 3
    assert c.admit(FakeSession(), "192.0.2.3") == FULL  # no one silent 5 s


def test_client_memory_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(flood_module, "MAX_KEYS", 10)
    clock = Clock()
    c = Connections(100, per_client=5, clock=clock)
    for i in range(50):
        s = FakeSession()
        c.admit(s, f"192.0.2.{i}")
        c.release(s)
        clock.now += 1
    assert len(c._clients) <= 10
