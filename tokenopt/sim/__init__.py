"""A provider simulator: OpenAI Chat/Responses and Anthropic Messages on loopback.

It answers deterministically, reports usage exactly as each provider does, and
takes fault-injection headers, so it serves as the upstream in tests, replays
and benchmarks.
"""

from __future__ import annotations

from tokenopt.sim.app import create_sim_app
from tokenopt.sim.cache import CacheModel, CacheResult, NoCache
from tokenopt.sim.prompt import Prompt, Segment

__all__ = ["CacheModel", "CacheResult", "NoCache", "Prompt", "Segment", "create_sim_app"]
