"""The plugin contract, discovery through entry points, and the ordered pipeline.

Every optimisation, built-in or third-party, is a class registered in the
`tokenopt.plugins` entry-point group and shaped like `Plugin` below. Bad names,
settings or signatures fail at start-up with `PluginError` / `ConfigError`,
never on a request.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from tokenopt.dialects.base import RequestView, Usage
from tokenopt.exceptions import ConfigError, PluginError, PolicyRejected

if TYPE_CHECKING:
    from tokenopt.store.base import Store
    from tokenopt.tokens import TokenCounter

ENTRY_POINT_GROUP = "tokenopt.plugins"
logger = logging.getLogger("tokenopt.pipeline")


@dataclass(slots=True)
class PluginContext:
    """What a plugin may use: the tenant's store, the token counter, and a notes dict.

    `notes` is what the plugin reports it did (tokens removed, breakpoints
    placed, ...); it lands in the exchange record. `clock` is the time to
    reason with (wall time live, the recorded time in a replay). New fields
    can be added here without breaking any plugin.
    """

    store: Store
    counter: TokenCounter
    notes: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[], float] = time.time


@dataclass(slots=True)
class ResponseView:
    """What the optional `on_response` hook sees once a response has ended."""

    request: RequestView
    status: int
    usage: Usage | None
    complete: bool


@runtime_checkable
class Plugin(Protocol):
    """One transform over the request view.

    A plugin class has a `name`, a pydantic `Settings` model for its
    `[plugins.<name>]` table, is built as `Plugin(settings)`, and implements
    `on_request`. It may also define `async def on_response(self, response:
    ResponseView, ctx: PluginContext) -> None`, run after the response ends.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]]
    enabled_by_default: ClassVar[bool]

    async def on_request(self, view: RequestView, ctx: PluginContext) -> RequestView: ...


def discover(group: str = ENTRY_POINT_GROUP) -> dict[str, type[Plugin]]:
    """Load every plugin class registered in the entry-point group, validated."""
    found: dict[str, type[Plugin]] = {}
    for entry in entry_points(group=group):
        try:
            cls = entry.load()
        except Exception as exc:
            raise PluginError(f"plugin '{entry.name}' failed to load: {exc}") from exc
        found[entry.name] = validate_plugin_class(cls, entry.name)
    return found


def validate_plugin_class(cls: Any, registered_as: str | None = None) -> type[Plugin]:
    """Check a plugin class against the contract; raise PluginError naming what is wrong."""
    label = registered_as or getattr(cls, "__name__", repr(cls))
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin '{label}' has no string 'name'")
    if registered_as is not None and name != registered_as:
        raise PluginError(f"plugin '{label}' calls itself '{name}'")
    settings = getattr(cls, "Settings", None)
    if not (isinstance(settings, type) and issubclass(settings, BaseModel)):
        raise PluginError(f"plugin '{name}' needs a pydantic 'Settings' model")
    if not inspect.iscoroutinefunction(getattr(cls, "on_request", None)):
        raise PluginError(f"plugin '{name}' needs 'async def on_request(self, view, ctx)'")
    on_response = getattr(cls, "on_response", None)
    if on_response is not None and not inspect.iscoroutinefunction(on_response):
        raise PluginError(f"plugin '{name}': 'on_response' must be async")
    if not isinstance(getattr(cls, "enabled_by_default", False), bool):
        raise PluginError(f"plugin '{name}': 'enabled_by_default' must be a bool")
    return cls  # type: ignore[no-any-return]


def build_plugins(
    registry: Mapping[str, type[Plugin]],
    tables: Mapping[str, Mapping[str, Any]],
    order: Iterable[str],
) -> list[Plugin]:
    """Instantiate the enabled plugins in pipeline order, each with its own settings.

    Plugins named in `order` run first, in that order; other enabled ones follow
    sorted by name, so the order never depends on import order.
    """
    unknown = sorted(set(tables) - set(registry))
    if unknown:
        raise ConfigError(f"plugin '{unknown[0]}' is not installed (installed: {sorted(registry)})")
    ranked = [name for name in order if name in registry]
    ranked += sorted(set(registry) - set(ranked))
    plugins: list[Plugin] = []
    for name in ranked:
        cls = registry[name]
        table = dict(tables.get(name, {}))
        if not _as_bool(table.pop("enabled", getattr(cls, "enabled_by_default", False)), name):
            continue
        plugins.append(cls(_plugin_settings(cls, table)))  # type: ignore[call-arg]
    return plugins


def _plugin_settings(cls: type[Plugin], table: Mapping[str, Any]) -> BaseModel:
    extra = sorted(set(table) - set(cls.Settings.model_fields))
    if extra:
        raise ConfigError(f"plugin '{cls.name}' has no setting '{extra[0]}'")
    try:
        return cls.Settings.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(f"plugin '{cls.name}': {exc}") from exc


def _as_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"plugin '{name}': 'enabled' must be true or false, not {value!r}")
    return value


@dataclass(slots=True)
class PipelineResult:
    """The view after every plugin ran, what each noted, and which plugin failed (if one did)."""

    view: RequestView
    notes: dict[str, dict[str, Any]]
    failed: str | None = None
    error: BaseException | None = None


class Pipeline:
    """Runs plugins in order over a view; a plugin that raises fails the request open."""

    def __init__(self, plugins: Iterable[Plugin], *, strict: bool = False) -> None:
        self.plugins = tuple(plugins)
        self.strict = strict
        self.responders = tuple(p for p in self.plugins if hasattr(p, "on_response"))

    def __bool__(self) -> bool:
        return bool(self.plugins)

    async def run(
        self, view: RequestView, context: PluginContextFactory
    ) -> PipelineResult:
        notes: dict[str, dict[str, Any]] = {}
        for plugin in self.plugins:
            ctx = context(plugin.name)
            try:
                view = await plugin.on_request(view, ctx)
            except PolicyRejected:
                raise  # a deliberate refusal, not a failure to fail open on
            except Exception as exc:
                if self.strict:
                    raise
                logger.warning(
                    "plugin %s failed, forwarding the request unchanged: %r", plugin.name, exc
                )
                return PipelineResult(view, notes, failed=plugin.name, error=exc)
            if ctx.notes:
                notes[plugin.name] = ctx.notes
        return PipelineResult(view, notes)

    async def respond(self, response: ResponseView, context: PluginContextFactory) -> None:
        for plugin in self.responders:
            try:
                await plugin.on_response(response, context(plugin.name))
            except Exception:
                if self.strict:
                    raise
                logger.exception("plugin %s failed in on_response", plugin.name)


class PluginContextFactory(Protocol):
    def __call__(self, plugin: str) -> PluginContext: ...
