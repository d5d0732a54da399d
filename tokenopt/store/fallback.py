"""Keep serving on local state while the shared store is down, and say so once.

An outage logs one warning, then calls go straight to the local store (no
per-request timeouts) until a back-off passes; one call at a time then probes
the primary again. Namespaced views share this health state, so one outage is
one warning and one back-off, however many tenants notice it.

A primary that answers slowly (a blocked or paused Redis) is an outage too:
each call to it is cut off after `timeout` seconds, so the request path never
waits on the shared store longer than that.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from tokenopt.store.base import Store, StoreUnavailable, erase_namespace

logger = logging.getLogger("tokenopt.store")

T = TypeVar("T")
MAX_RETRY_AFTER: Final = 60.0
# Far above a healthy Redis round trip (~0.1-1 ms on a LAN), and loose enough that a
# briefly busy event loop does not trip it; short enough that a request barely notices.
CALL_TIMEOUT: Final = 0.5


class _Health:
    """Outage state shared by a `FallbackStore` and all its namespaces."""

    def __init__(self, clock: Callable[[], float], retry_after: float) -> None:
        if not retry_after > 0:
            raise ValueError(f"retry_after must be positive, got {retry_after!r}")
        self.clock = clock
        self.retry_after = retry_after
        self.backoff = retry_after
        self.degraded = False
        self.outages = 0
        self.next_try = 0.0
        self.probing = False

    def use_local(self) -> bool:
        return self.degraded and (self.probing or self.clock() < self.next_try)

    def failed(self, exc: StoreUnavailable, *, probe: bool) -> None:
        if not self.degraded:
            self.degraded = True
            self.outages += 1
            self.backoff = self.retry_after
            logger.warning(
                "shared store unavailable, serving from local state (retry in %.0fs): %s",
                self.backoff,
                exc,
            )
        elif probe:
            self.backoff = min(self.backoff * 2, MAX_RETRY_AFTER)
            logger.debug("shared store still unavailable, next retry in %.0fs", self.backoff)
        else:
            return  # a call that started before the outage was noticed
        self.next_try = self.clock() + self.backoff

    def succeeded(self) -> None:
        if self.degraded:
            self.degraded = False
            self.backoff = self.retry_after
            logger.info("shared store recovered after outage %d", self.outages)


class FallbackStore:
    """A `Store` that uses `primary` and falls back to `local` on `StoreUnavailable`.

    Args:
        primary: The shared store, usually a `RedisStore`.
        local: The in-process store served during an outage, usually a `MemoryStore`.
        clock: Seconds source for the back-off; inject a fake one in tests.
        retry_after: Seconds before the first retry; doubles per failed retry up to 60.
        timeout: Seconds a call may wait on `primary` before it counts as an outage.

    Attributes:
        degraded: True while calls are served from `local`.
        outages: How many outages began since this store was built.
    """

    def __init__(
        self,
        primary: Store,
        local: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_after: float = 5.0,
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.primary = primary
        self.local = local
        self.timeout = timeout
        self._health = _Health(clock, retry_after)

    @property
    def degraded(self) -> bool:
        return self._health.degraded

    @property
    def outages(self) -> int:
        return self._health.outages

    def namespace(self, name: str) -> FallbackStore:
        view = FallbackStore.__new__(FallbackStore)
        view.primary = self.primary.namespace(name)
        view.local = self.local.namespace(name)
        view.timeout = self.timeout
        view._health = self._health
        return view

    async def _call(self, operation: Callable[[Store], Awaitable[T]]) -> T:
        health = self._health
        if health.use_local():
            return await operation(self.local)
        probe = health.degraded
        health.probing = health.probing or probe
        try:
            result = await self._bounded(operation(self.primary))
        except StoreUnavailable as exc:
            health.failed(exc, probe=probe)
            return await operation(self.local)
        finally:
            if probe:
                health.probing = False
        health.succeeded()
        return result

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except TimeoutError as exc:
            raise StoreUnavailable(f"shared store did not answer within {self.timeout}s") from exc

    async def get(self, key: str) -> bytes | None:
        return await self._call(lambda store: store.get(key))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._call(lambda store: store.set(key, value, ttl))

    async def delete(self, key: str) -> None:
        await self._call(lambda store: store.delete(key))

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return await self._call(lambda store: store.incr(key, amount, ttl))

    async def sadd(self, key: str, *members: str, ttl: float | None = None) -> int:
        return await self._call(lambda store: store.sadd(key, *members, ttl=ttl))

    async def smembers(self, key: str) -> builtins.set[str]:
        return await self._call(lambda store: store.smembers(key))

    async def expire(self, key: str, ttl: float) -> bool:
        return await self._call(lambda store: store.expire(key, ttl))

    async def erase_namespace(self, name: str) -> int:
        """Delete namespace `name` from the primary and from local state; return keys deleted.

        Unlike other calls this never falls back: an erase the primary did not do
        raises `StoreUnavailable`, so it is never reported as done.
        """
        erased = await erase_namespace(self.primary, name)
        return erased + await erase_namespace(self.local, name)

    async def ping(self) -> None:
        """Probe the primary now, whatever the back-off; raise `StoreUnavailable` if it is down.

        A failure counts as an outage, so other calls keep going to `local`.
        """
        try:
            await self._bounded(self.primary.ping())
        except StoreUnavailable as exc:
            self._health.failed(exc, probe=self._health.degraded)
            raise
        self._health.succeeded()

    async def aclose(self) -> None:
        try:
            await self.primary.aclose()
        finally:
            await self.local.aclose()
