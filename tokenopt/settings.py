"""Settings: arguments, then `TOKENOPT_*` environment variables, then the TOML file.

One frozen model holds everything; plugin tables stay raw here and are checked
by each plugin's own settings model when the engine is built.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tokenopt.exceptions import ConfigError

CONFIG_ENV = "TOKENOPT_CONFIG"
ENV_PREFIX = "TOKENOPT_"
# Documented single-value names; any other value is TOKENOPT_<SECTION>__<KEY>.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "TOKENOPT_UPSTREAM": ("upstream", "url"),
    "TOKENOPT_REDIS_URL": ("store", "redis_url"),
    "TOKENOPT_LEDGER": ("ledger", "path"),
    "TOKENOPT_ADMIN_TOKEN": ("admin", "token"),
    "TOKENOPT_MAX_BODY_BYTES": ("limits", "max_body_bytes"),
    "TOKENOPT_RECORD": ("record", "path"),
    "TOKENOPT_PRICES": ("pricing", "overrides"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamSettings(_Section):
    url: str | None = None
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)
    max_connections: int = Field(default=200, ge=1)


class StoreSettings(_Section):
    redis_url: str | None = None
    key_prefix: str = "tokenopt:"


class LedgerSettings(_Section):
    """Where exchange records are kept: SQLite at `path` (default: the user data dir),
    or Redis when `[store] redis_url` is set, so replicas report as one."""

    enabled: bool = True
    path: str | None = None
    retention_days: int = Field(default=90, ge=1)


class AdminSettings(_Section):
    token: str | None = Field(default=None, repr=False)


class LimitsSettings(_Section):
    """Caps that keep one request from holding a core: bigger bodies get 413, more tools 400.

    10,000 tools is the largest catalogue a provider documents (Anthropic's tool search).
    """

    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    max_tools: int = Field(default=10_000, ge=0)


class PricingSettings(_Section):
    """A TOML file of per-model rates that wins over the price library (see tokenopt.pricing)."""

    overrides: str | None = None


class RecordSettings(_Section):
    """Where the sidecar appends its traffic in the replay format (off when absent)."""

    path: str | None = None


class PipelineSettings(_Section):
    order: list[str] = ["normalize", "tools", "thinking"]
    strict: bool = False


class Settings(BaseSettings):
    """Everything tokenopt is configured with; see DESIGN.md for each section."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    upstream: UpstreamSettings = UpstreamSettings()
    store: StoreSettings = StoreSettings()
    ledger: LedgerSettings = LedgerSettings()
    admin: AdminSettings = AdminSettings()
    limits: LimitsSettings = LimitsSettings()
    pipeline: PipelineSettings = PipelineSettings()
    record: RecordSettings = RecordSettings()
    pricing: PricingSettings = PricingSettings()
    plugins: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read the TOML file (`path`, else `$TOKENOPT_CONFIG`), the environment, then overrides."""
        environ = os.environ if environ is None else environ
        path = path or environ.get(CONFIG_ENV) or None
        layers = [_read_toml(Path(path)) if path else {}, _from_env(environ), overrides]
        merged: dict[str, Any] = {}
        for layer in layers:
            _deep_merge(merged, layer)
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(f"invalid settings: {exc}") from exc

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `load()` already merged file and environment in priority order.
        return (init_settings,)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file '{path}' does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not valid TOML: {exc}") from exc


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        keys = ENV_ALIASES.get(name) or tuple(
            part.lower() for part in name[len(ENV_PREFIX) :].split("__")
        )
        if len(keys) < 2:
            continue  # not a setting (e.g. TOKENOPT_CONFIG handled above)
        node = values
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = _env_value(raw)
    return values


def _env_value(raw: str) -> Any:
    # TOML's scalar syntax gives env values real types: 5, true, "x", ["a", "b"].
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _deep_merge(target: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        elif isinstance(value, Mapping):
            target[key] = {}
            _deep_merge(target[key], value)
        else:
            target[key] = value
