"""Config loading: precedence, env overrides, typed values, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgw.ops import config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailgw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_defaults_when_nothing_is_given() -> None:
    s = config.load(search=False, environ={})
    assert s.source == "embedded defaults"
    assert s.smtp.listen == "127.0.0.1:2525"
    assert s.smtp.max_message_size == 25_000_000
    assert s.dispatch.retry.busy == 180 and s.dispatch.retry.kill_time == 3 * 3600
    assert s.accounts.default_credits is None
    assert s.notify.return_path == ""


def test_precedence_flag_then_env_var_file(tmp_path: Path) -> None:
    a = write(tmp_path, '[smtp]\nlisten = "127.0.0.1:1111"\n')
    b = tmp_path / "b.toml"
    b.write_text('[smtp]\nlisten = "127.0.0.1:2222"\n')
    assert config.load(a, environ={"MAILGW_CONFIG": str(b)}).smtp.listen == "127.0.0.1:1111"
    assert config.load(None, environ={"MAILGW_CONFIG": str(b)}).smtp.listen == "127.0.0.1:2222"


def test_env_overrides_win_over_the_file_and_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nlisten = "127.0.0.1:1111"\nmax_message_size = "10MB"\n')
    env = {"MAILGW_SMTP__LISTEN": "0.0.0.0:25", "MAILGW_DISPATCH__RETRY__BUSY": "90s",
           "MAILGW_DISPATCH__WORKERS": "8", "MAILGW_SMTP__AUTH_REQUIRED": "true",
           "MAILGW_DRIVERS__SIMULATOR__TIME_SCALE": "0.5", "MAILGW_REQUIRE_ALL": "1"}
    s = config.load(path, environ=env)
    assert s.smtp.listen == "0.0.0.0:25"
    assert s.smtp.max_message_size == 10_000_000
    assert s.dispatch.retry.busy == 90.0
    assert s.dispatch.workers == 8
    assert s.smtp.auth_required is True
    assert s.drivers.simulator.time_scale == 0.5


@pytest.mark.parametrize("text, key", [
    ('[smtp]\nlisen = "x:1"\n', "smtp.lisen: unknown key (did you mean 'listen'?)"),
    ('[smpt]\nlisten = "x:1"\n', "smpt: unknown section (did you mean 'smtp'?)"),
    ('[smtp]\nlisten = "nohost"\n', "smtp.listen: expected host:port"),
    ('[smtp]\nmax_message_size = "lots"\n', "smtp.max_message_size: expected a size"),
    ('[dispatch.retry]\nbusy = "soon"\n', "dispatch.retry.busy: expected a duration"),
    ('[dispatch]\nworkers = "many"\n', "dispatch.workers: expected an integer"),
    ('[accounts]\ndefault_tz = "Mars/Olympus"\n', "accounts.default_tz: unknown time zone"),
    ('[notify]\non = "sometimes"\n', "notify.on: expected all, failures or summary"),
    ('[serve]\nroles = ["smtp", "fax"]\n', "serve.roles: unknown role 'fax'"),
    ('[drivers.hylafax]\nretry = "busy=soon"\n', "drivers.hylafax.retry: "),
    ('[drivers.sinch]\nretry = "often=2"\n', "drivers.sinch.retry: 'often=2'"),
    ('[store]\nurl = "mysql://x"\n', "store.url: expected sqlite"),
    ("[smtp\n", "not valid TOML"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    assert any(key in p for p in err.value.problems), err.value.problems


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="file not found"):
        config.load(tmp_path / "nope.toml", environ={})


def test_the_example_config_is_valid_and_documents_every_key() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "mailgw.toml"
    s = config.load(example, environ={})
    assert s.source == str(example)
    text = example.read_text(encoding="utf-8")
    # every key of every section appears in the example (commented or not)
    import dataclasses

    def keys(obj: object, prefix: str = "") -> list[str]:
        out = []
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            if f.name == "source":
                continue
            value = getattr(obj, f.name)
            if isinstance(value, config.DriversSettings):  # each registered driver's table
                for name in value:
                    out += keys(value[name], f"{prefix}{f.name}.{name}.")
            elif dataclasses.is_dataclass(value):
                out += keys(value, f"{prefix}{f.name}.")
            else:
                out.append(f.name)
        return out

    missing = [k for k in keys(s) if f"{k} =" not in text]
    assert not missing, f"keys not documented in config/mailgw.toml: {missing}"


@pytest.mark.parametrize("value, expected", [("25MB", 25_000_000), ("512KB", 512_000),
                                             ("1MiB", 1_048_576), (1000, 1000), ("2GB", 2e9)])
def test_sizes(value: object, expected: float) -> None:
    assert config.parse_size(value) == expected


@pytest.mark.parametrize("value, expected", [("3m", 180), ("500ms", 0.5), ("3h", 10800),
                                             ("5d", 432000), (7, 7), ("30s", 30)])
def test_durations(value: object, expected: float) -> None:
    assert config.parse_duration(value) == expected
