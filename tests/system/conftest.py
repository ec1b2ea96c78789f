"""The HylaFAX fixtures the send and receive tests share (tests/hylafax_fixtures.py)."""

from tests.hylafax_fixtures import hylafax, t31_binary  # noqa: F401 - fixtures, by name
