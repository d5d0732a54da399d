"""The savings ledger: one priced entry per LLM exchange, stored off the request path.

SQLite on one machine by default; Redis (day hashes keyed by entry id, with a
local spool for outages) when `[store] redis_url` is set, so every replica
writes to, and reports from, the same ledger, and each exchange is stored once.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Protocol

from tokenopt.ledger.entry import LedgerEntry, entry_from
from tokenopt.ledger.sqlite import SqliteLedger
from tokenopt.pricing import PriceBook
from tokenopt.records import ExchangeRecord
from tokenopt.settings import Settings
from tokenopt.store import Store

__all__ = ["Ledger", "LedgerEntry", "LedgerSink", "SqliteLedger", "default_path", "entry_from",
           "open_ledger"]

logger = logging.getLogger("tokenopt.ledger")


class Ledger(Protocol):
    async def append(self, entries: list[LedgerEntry]) -> None: ...
    async def query(self, since: float | None = None, until: float | None = None
                    ) -> list[LedgerEntry]: ...
    async def erase_tenant(self, tenant: str) -> int: ...
    async def aclose(self) -> None: ...


def default_path() -> Path:
    """`$XDG_DATA_HOME/tokenopt/ledger.sqlite` (or `~/.local/share/...`)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tokenopt" / "ledger.sqlite"


def open_ledger(settings: Settings, store: Store | None = None) -> Ledger:
    """The ledger the settings describe: Redis-shared when the store is Redis, else SQLite."""
    local = SqliteLedger(settings.ledger.path or default_path(),
                         retention_days=settings.ledger.retention_days)
    client = _redis_client(store)
    if client is None:
        return local
    from tokenopt.ledger.redis import RedisLedger

    return RedisLedger(client, key_prefix=settings.store.key_prefix,
                       retention_days=settings.ledger.retention_days, local=local)


def _redis_client(store: Store | None) -> object | None:
    primary = getattr(store, "primary", store)
    return getattr(primary, "client", None) if primary is not None else None


class LedgerSink:
    """A record sink: prices each exchange, writes it to the ledger, logs it as one JSON line."""

    def __init__(self, ledger: Ledger, prices: PriceBook) -> None:
        self.ledger = ledger
        self.prices = prices

    async def write(self, record: ExchangeRecord) -> None:
        entry = entry_from(record, self.prices)
        if logger.isEnabledFor(logging.INFO):
            fields = entry.as_json()
            fields.pop("plugins")
            logger.info(json.dumps({"event": "exchange", **fields}, separators=(",", ":")))
        await self.ledger.append([entry])
