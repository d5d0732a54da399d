"""Per-conversation tool state in the store: the strategy chosen and the loaded set.

The loaded set only grows, in the order tools were first loaded, so the tools
a conversation's requests carry are the same bytes turn after turn and grow
only at their end. The store is the tenant's namespace, so one tenant never
sees another's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tokenopt.store.base import Store


@dataclass(slots=True)
class ToolState:
    strategy: str | None = None
    reason: dict[str, Any] = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)


class ConversationTools:
    """Reads and appends one conversation's tool state."""

    def __init__(self, store: Store, conversation: str, ttl: float) -> None:
        self.store = store
        self.key = f"tools:{conversation}"
        self.ttl = ttl

    async def load(self) -> ToolState:
        raw = await self.store.get(self.key)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        loaded = data.get("loaded")
        reason = data.get("reason")
        return ToolState(
            strategy=data.get("strategy") if isinstance(data.get("strategy"), str) else None,
            reason=reason if isinstance(reason, dict) else {},
            loaded=[n for n in loaded if isinstance(n, str)] if isinstance(loaded, list) else [],
        )

    async def save(self, state: ToolState) -> None:
        data = {"strategy": state.strategy, "reason": state.reason, "loaded": state.loaded}
        await self.store.set(self.key, json.dumps(data).encode(), ttl=self.ttl)

    async def append(self, names: list[str]) -> None:
        """Add newly loaded tools at the end (re-read first: another turn may have added some)."""
        state = await self.load()
        new = [name for name in names if name not in state.loaded]
        if new:
            state.loaded += new
            await self.save(state)
