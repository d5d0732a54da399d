"""What the simulator billed for each request it answered: replay's source of truth."""

from __future__ import annotations

from dataclasses import dataclass

from tokenopt.sim.wire import Counts


@dataclass(frozen=True, slots=True)
class Bill:
    """One answered request: who, which model, the usage reported, and how the model chose.

    `outcome` is `generated` (no recorded answer), `recorded`, `scripted` or
    `structured` (`tokenopt sim --script`), `search` (a recorded or scripted
    tool was not offered, so the model called a function search tool),
    `native_search` (the provider's server-side tool search loaded it within
    this call), `client_search` (the model called a client-run provider tool
    search) or `tool_miss` (not offered and not found).
    """

    route: str
    model: str
    scope: str
    counts: Counts
    outcome: str
    estimate: bool
