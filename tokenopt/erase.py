"""Erasing one tenant: its state in the store and its entries in the ledger.

Used by `tokenopt erase-tenant` (the configured Redis store and ledger, from any
machine) and by the sidecar's `DELETE /tokenopt/tenants/{tenant}` (its live
store, in-process state included, and its ledger).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tokenopt.exceptions import ConfigError
from tokenopt.identity import ANONYMOUS
from tokenopt.ledger import Ledger, default_path, open_ledger
from tokenopt.settings import Settings
from tokenopt.store import Store, open_store
from tokenopt.store.base import erase_namespace, redact_url

# What `identity.tenant_of` makes: a digest, never the key itself.
TENANT_ID: Final = re.compile(r"t_[0-9a-f]{24}")


@dataclass(frozen=True, slots=True)
class Erased:
    """What one erase deleted, and from where."""

    tenant: str
    store_keys: int
    ledger_entries: int
    store: str
    ledger: str

    def lines(self) -> list[str]:
        return [f"tenant {self.tenant}",
                f"  store:  {self.store_keys} keys erased from {self.store}",
                f"  ledger: {self.ledger_entries} entries erased from {self.ledger}"]

    def as_json(self) -> dict[str, object]:
        return {"tenant": self.tenant, "store_keys": self.store_keys,
                "ledger_entries": self.ledger_entries, "store": self.store, "ledger": self.ledger}


def check_tenant(tenant: str) -> str:
    """`tenant` if it is a tenant id; the value is never echoed (it may be a pasted key)."""
    if tenant == ANONYMOUS or TENANT_ID.fullmatch(tenant):
        return tenant
    raise ConfigError("not a tenant id: tenant ids are 't_' and 24 hex digits, or 'anonymous' "
                      "(see `tokenopt report --group-by tenant`, or pass '-' and the API key "
                      "on stdin)")


async def erase(tenant: str, store: Store, ledger: Ledger | None, *,
                store_name: str, ledger_name: str) -> Erased:
    """Delete `tenant`'s namespace from `store` and its entries from `ledger`."""
    keys = await erase_namespace(store, check_tenant(tenant))
    entries = await ledger.erase_tenant(tenant) if ledger is not None else 0
    return Erased(tenant, keys, entries, store_name, ledger_name)


async def erase_configured(settings: Settings, tenant: str) -> Erased:
    """Erase `tenant` from the store and ledger `settings` configure (the CLI's case).

    Without `[store] redis_url` the store is each sidecar's own memory, which
    this process cannot reach: `DELETE /tokenopt/tenants/{tenant}` on the
    sidecar erases it there (a restart drops it too).
    """
    check_tenant(tenant)
    url = settings.store.redis_url
    store = open_store(url, key_prefix=settings.store.key_prefix)
    path = Path(settings.ledger.path) if settings.ledger.path else default_path()
    ledger = open_ledger(settings, store) if url or path.exists() else None
    if url:
        store_name = f"redis at {redact_url(url)}"
        ledger_name = f"redis at {redact_url(url)} (and its spool at {path})"
    else:
        store_name = ("no shared store (in-process state lives in each sidecar: "
                      "DELETE /tokenopt/tenants/<id> there, or restart it)")
        ledger_name = f"sqlite at {path}" if ledger else f"nothing (no ledger at {path})"
    try:
        return await erase(tenant, store, ledger, store_name=store_name, ledger_name=ledger_name)
    finally:
        if ledger is not None:
            await ledger.aclose()
        await store.aclose()
