"""OpenAI Chat Completions and Responses: `reasoning_effort` / `reasoning.effort` and output caps.

OpenAI takes no thinking-token budget, so a budget becomes the highest effort
whose nominal budget fits, then the nearest effort the model accepts at or
below it (§3.2: gpt-5 has no `none`, gpt-5-pro only `high`, ...). No effort is
ever sent to a model that is not known to take one, unless the client sent one.
"""

from __future__ import annotations

import dataclasses

from tokenopt.dialects.base import RequestView
from tokenopt.plugins.thinking.decision import (
    Change,
    Figures,
    Limits,
    Outcome,
    effective_effort,
    lower_effort,
    nominal,
)
from tokenopt.plugins.thinking.models import GENERIC_EFFORTS, ModelCaps


def effort_field(view: RequestView) -> str:
    return "reasoning.effort" if view.dialect == "openai-responses" else "reasoning_effort"


def output_field(view: RequestView) -> str:
    if view.dialect == "openai-responses":
        return "max_output_tokens"
    return "max_tokens" if "max_tokens" in view.body else "max_completion_tokens"


def enforce(view: RequestView, limits: Limits, caps: ModelCaps) -> Outcome:
    """Clamp the effort and the output cap of a Chat or Responses request."""
    out = Outcome(view)
    max_out = view.max_output_tokens
    cap = limits.output_tokens
    if cap is not None and (max_out is None or max_out > cap):
        out.changes.append(Change(output_field(view), max_out, cap, f"max_output_tokens={cap}"))
        max_out = cap
    sent = view.reasoning.effort
    accepted = caps.efforts or (GENERIC_EFFORTS if sent in GENERIC_EFFORTS else ())
    current = effective_effort(sent, caps)
    effort = lower_effort(current, accepted, limits, effort_field(view), out)
    reasoning = dataclasses.replace(view.reasoning, effort=effort if effort != current else sent)
    out.requested = Figures(nominal(current, limits.budgets), current, view.max_output_tokens)
    out.enforced = Figures(nominal(effort, limits.budgets), effort, max_out)
    out.view = dataclasses.replace(view, reasoning=reasoning, max_output_tokens=max_out)
    return out
