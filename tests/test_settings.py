from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tokenopt.exceptions import ConfigError
from tokenopt.settings import Settings

TOML = """
[upstream]
url = "http://file:4000"
[store]
redis_url = "redis://file:6379/0"
[limits]
max_body_bytes = 1000
[plugins.normalize]
enabled = false
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tokenopt.toml"
    path.write_text(TOML)
    return path


def test_defaults_need_no_file_and_no_environment() -> None:
    settings = Settings.load(environ={})
    assert settings.upstream.url is None
    assert settings.store.redis_url is None
    assert settings.limits.max_body_bytes == 32 * 1024 * 1024
    assert settings.plugins == {}


def test_the_toml_file_is_read(config: Path) -> None:
    settings = Settings.load(config, environ={})
    assert settings.upstream.url == "http://file:4000"
    assert settings.limits.max_body_bytes == 1000
    assert settings.plugins == {"normalize": {"enabled": False}}


def test_tokenopt_config_names_the_file(config: Path) -> None:
    assert Settings.load(environ={"TOKENOPT_CONFIG": str(config)}).upstream.url == "http://file:4000"


@pytest.mark.parametrize(
    ("name", "value", "path", "expected"),
    [
        ("TOKENOPT_UPSTREAM", "http://env:1", ("upstream", "url"), "http://env:1"),
        ("TOKENOPT_REDIS_URL", "redis://env:6379/1", ("store", "redis_url"), "redis://env:6379/1"),
        ("TOKENOPT_LEDGER", "/var/lib/tokenopt/ledger.db", ("ledger", "path"), "/var/lib/tokenopt/ledger.db"),
        ("TOKENOPT_ADMIN_TOKEN", "s3cret", ("admin", "token"), "s3cret"),
        ("TOKENOPT_MAX_BODY_BYTES", "2048", ("limits", "max_body_bytes"), 2048),
        ("TOKENOPT_LIMITS__MAX_BODY_BYTES", "4096", ("limits", "max_body_bytes"), 4096),
        ("TOKENOPT_UPSTREAM__READ_TIMEOUT", "1.5", ("upstream", "read_timeout"), 1.5),
    ],
)
def test_each_documented_environment_name_overrides_the_file(
    config: Path, name: str, value: str, path: tuple[str, str], expected: object
) -> None:
    settings = Settings.load(config, environ={name: value})
    assert getattr(getattr(settings, path[0]), path[1]) == expected


def test_environment_reaches_plugin_tables(config: Path) -> None:
    settings = Settings.load(config, environ={"TOKENOPT_PLUGINS__NORMALIZE__ENABLED": "true",
                                              "TOKENOPT_PLUGINS__TOOLS__PINNED": '["a", "b"]'})
    assert settings.plugins == {"normalize": {"enabled": True}, "tools": {"pinned": ["a", "b"]}}


def test_arguments_override_the_environment(config: Path) -> None:
    settings = Settings.load(config, environ={"TOKENOPT_UPSTREAM": "http://env:1"},
                             upstream={"url": "http://arg:2"})
    assert settings.upstream.url == "http://arg:2"
    assert settings.store.redis_url == "redis://file:6379/0"


def test_the_admin_token_is_not_in_the_repr() -> None:
    settings = Settings.load(environ={"TOKENOPT_ADMIN_TOKEN": "s3cret"})
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[limits]\nmax_body_bytes = 0\n", "max_body_bytes"),
        ("[limits]\nmax_bytes = 5\n", "max_bytes"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[limits\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        Settings.load(path, environ={})


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "nope.toml", environ={})


def test_settings_are_frozen() -> None:
    settings = Settings.load(environ={})
    with pytest.raises(ValidationError, match="frozen"):
        settings.limits.max_body_bytes = 1  # type: ignore[misc]
