"""The live objects behind both forms, built once from settings."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from tokenopt.dialects import dialect_for
from tokenopt.dialects.base import Dialect
from tokenopt.ledger import LedgerSink, open_ledger
from tokenopt.metrics import Metrics
from tokenopt.pipeline import (
    Pipeline,
    Plugin,
    PluginContext,
    PluginContextFactory,
    build_plugins,
    discover,
)
from tokenopt.pricing import PriceBook
from tokenopt.recording import TrafficRecorder
from tokenopt.records import ExchangeRecord, RecentRecords, RecordSink
from tokenopt.settings import Settings
from tokenopt.store import Store, open_store
from tokenopt.tokens import TokenCounter
from tokenopt.types import Scope

logger = logging.getLogger("tokenopt.engine")


class Engine:
    """Settings, pipeline, store, token counter and record sinks, shared by every request.

    Read-only once built; per-request state lives on `Exchange`. Work that must
    not delay a response (records, `on_response` hooks) runs in tasks the
    engine owns and awaits on `aclose()`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        plugins: Iterable[Plugin] = (),
        store: Store | None = None,
        counter: TokenCounter | None = None,
        sinks: Iterable[RecordSink] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.pipeline = Pipeline(plugins, strict=settings.pipeline.strict)
        self.store = store if store is not None else open_store(
            settings.store.redis_url, key_prefix=settings.store.key_prefix
        )
        self.counter = counter if counter is not None else TokenCounter()
        self.recent = RecentRecords()
        self.ledger = open_ledger(settings, self.store) if settings.ledger.enabled else None
        self.prices = PriceBook.load(settings.pricing.overrides)
        ledger_sinks = (LedgerSink(self.ledger, self.prices),) if self.ledger is not None else ()
        self.metrics = Metrics(self.prices)
        self.sinks: tuple[RecordSink, ...] = (self.recent, self.metrics, *ledger_sinks, *sinks)
        self.max_body_bytes = settings.limits.max_body_bytes
        self.recorder = TrafficRecorder(settings.record.path) if settings.record.path else None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, registry: Mapping[str, type[Plugin]] | None = None,
        **kwargs: Any,
    ) -> Engine:
        """Build the engine with the plugins the settings enable (entry points by default)."""
        registry = discover() if registry is None else registry
        plugins = build_plugins(registry, settings.plugins, settings.pipeline.order)
        return cls(settings, plugins=plugins, **kwargs)

    async def warm(self) -> None:
        """Load what the first request would otherwise wait for (token encodings)."""
        await asyncio.to_thread(self.counter.warm)

    def dialect_for(self, scope: Scope) -> Dialect | None:
        if scope["type"] != "http":
            return None
        return dialect_for(scope["method"], scope["path"])

    def context_for(self, tenant: str) -> PluginContextFactory:
        store = self.store.namespace(tenant)
        return lambda plugin: PluginContext(store=store.namespace(plugin), counter=self.counter,
                                            clock=self.clock)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work after the response, keeping a reference so it is neither lost nor orphaned."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background work failed", exc_info=task.exception())

    async def record(self, record: ExchangeRecord) -> None:
        for sink in self.sinks:
            await sink.write(record)

    async def drain(self) -> None:
        """Wait for every background task started so far (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        if self.ledger is not None:
            await self.ledger.aclose()
        await self.store.aclose()
        if self.recorder is not None:
            self.recorder.close()

