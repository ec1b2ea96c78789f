"""Typed settings from one TOML file plus `MAILGW_<SECTION>__<KEY>` environment overrides.

Where the file comes from: `--config`, else `$MAILGW_CONFIG`, else `/etc/mailgw/mailgw.toml`,
else the embedded defaults (config_schema.py). Every problem names the key and says why, so
`mailgw check-config` can print it and exit 2. The parts: config_types.py (value types and
parsers), config_schema.py (the tables), config_env.py (file, environment, typed builder),
config_check.py (what is wrong); a driver's table is declared in the driver's own file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mailgw.dispatch.drivers import registry
from mailgw.ops.config_check import validate
from mailgw.ops.config_env import (
    ENV_PREFIX,
    SYSTEM_CONFIG,
    build,
    env_overrides,
    find_config,
    merge,
    read_toml,
)
from mailgw.ops.config_schema import (
    AccountsSettings,
    DispatchSettings,
    DriversSettings,
    GatewaySettings,
    HttpSettings,
    ImapSettings,
    LimitsSettings,
    LogSettings,
    MailboxSettings,
    NotifySettings,
    ProofSettings,
    RetrySettings,
    ServeSettings,
    Settings,
    SmtpSettings,
    StoreSettings,
)
from mailgw.ops.config_types import (
    ROLES,
    Duration,
    HostPort,
    Size,
    parse_duration,
    parse_hostport,
    parse_size,
    split_hostport,
)

__all__ = [
    "ENV_PREFIX", "ROLES", "SYSTEM_CONFIG", "AccountsSettings", "ConfigError",
    "DispatchSettings", "DriversSettings", "Duration", "GatewaySettings", "HostPort",
    "HttpSettings", "ImapSettings", "LimitsSettings", "LogSettings", "MailboxSettings",
    "NotifySettings", "ProofSettings", "RetrySettings", "ServeSettings", "Settings", "Size",
    "SmtpSettings", "StoreSettings", "env_overrides", "find_config", "load", "merge",
    "parse_duration", "parse_hostport", "parse_size", "split_hostport",
]


class ConfigError(Exception):
    """The configuration is wrong; `problems` names each key and why."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def build_drivers(data: object, problems: list[str]) -> DriversSettings:
    """`[drivers.<name>]` tables, each read with its driver's settings class (the registry)."""
    if not isinstance(data, dict):
        problems.append(f"drivers: expected a table [drivers], got {data!r}")
        return DriversSettings()
    tables: dict[str, Any] = {}
    for name, table in data.items():
        if name not in registry.names():
            close = difflib.get_close_matches(name, registry.names(), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            what = "section" if isinstance(table, dict) else "key"
            problems.append(f"drivers.{name}: unknown {what}{hint}")
        elif not isinstance(table, dict):
            problems.append(f"drivers.{name}: expected a table [drivers.{name}], got {table!r}")
        else:
            tables[name] = build(registry.entry(name).settings, table, f"drivers.{name}.",
                                 problems)
    return DriversSettings(tables)


def load(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None, search: bool = True) -> Settings:
    """Load settings; raise ConfigError listing every wrong key.

    `overrides` (a nested dict) wins over the file and the environment: `demo` and tests use it.
    """
    environ = os.environ if environ is None else environ
    file = find_config(str(path) if path else None, environ) if search else (
        Path(path) if path else None)
    data: dict[str, Any] = {}
    if file is not None:
        data, problem = read_toml(file)
        if problem is not None:
            raise ConfigError([problem])
    data = merge(data, env_overrides(environ))
    if overrides:
        data = merge(data, overrides)
    problems: list[str] = []
    drivers = data.pop("drivers", {})
    settings: Settings = build(Settings, data, "", problems)
    settings.drivers = build_drivers(drivers, problems)
    if not problems:
        validate(settings, problems)
    if problems:
        raise ConfigError(problems)
    settings.source = str(file) if file else "embedded defaults"
    return settings
