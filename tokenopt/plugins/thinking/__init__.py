"""`thinking`: reasoning-token budgets per route, model, tenant or task class.

Rules from `[plugins.thinking]` cap the thinking budget, the reasoning effort
and the output size of each request, in the provider's own terms; `reject`
mode refuses instead and `observe` only records. See README "Thinking budgets".
"""

from __future__ import annotations

from tokenopt.plugins.thinking.plugin import ThinkingPlugin
from tokenopt.plugins.thinking.settings import Match, Rule, ThinkingSettings

__all__ = ["Match", "Rule", "ThinkingPlugin", "ThinkingSettings"]
