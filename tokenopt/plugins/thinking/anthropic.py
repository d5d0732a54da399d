"""Anthropic Messages: `thinking.budget_tokens`, adaptive thinking, `output_config.effort`.

Rules of the API (PROVIDER_SEMANTICS.md §3.1) this keeps: a budget is at least
1024 and below `max_tokens` (below the minimum, thinking goes off rather than
sending an invalid budget); thinking is never disabled on a model that cannot
disable it, nor on Opus 5 above effort `high`; no effort is sent to a model
that rejects the field (Sonnet 4.5, Haiku 4.5, older).
"""

from __future__ import annotations

import dataclasses

from tokenopt.dialects.base import Reasoning, RequestView
from tokenopt.plugins.thinking.decision import (
    Change,
    Figures,
    Limits,
    Outcome,
    effective_effort,
    lower_effort,
    nominal,
)
from tokenopt.plugins.thinking.models import ANTHROPIC_MIN_BUDGET as MIN
from tokenopt.plugins.thinking.models import ModelCaps
from tokenopt.plugins.thinking.settings import rank


def enforce(view: RequestView, limits: Limits, caps: ModelCaps) -> Outcome:
    """Clamp one Messages request to `limits`; the result is always a valid request."""
    out = Outcome(view)
    max_tokens = _clamp_output(view.max_output_tokens, limits, out)
    reasoning = dataclasses.replace(view.reasoning)
    sent_thinking = reasoning.thinking
    state = sent_thinking or ("adaptive" if caps.thinking_default_on else None)
    budget_cap = limits.budget_cap(caps)
    if state == "enabled" and reasoning.budget_tokens is not None:
        state, max_tokens = _clamp_budget(reasoning, budget_cap, max_tokens, caps, out)
    elif state == "adaptive" and budget_cap is not None and budget_cap < MIN and caps.can_disable:
        out.changes.append(Change("thinking.type", state, "disabled",
                                  f"max_thinking_tokens={budget_cap} is below {MIN}"))
        state = "disabled"
    _clamp_effort(reasoning, limits, caps, state, out)
    if state != (sent_thinking or ("adaptive" if caps.thinking_default_on else None)):
        reasoning.thinking = state
    out.requested = figures(view.reasoning, view.max_output_tokens, caps, limits)
    out.enforced = figures(reasoning, max_tokens, caps, limits, state)
    out.view = dataclasses.replace(view, reasoning=reasoning, max_output_tokens=max_tokens)
    return out


def _clamp_output(max_tokens: int | None, limits: Limits, out: Outcome) -> int | None:
    cap = limits.output_tokens
    if cap is None or (max_tokens is not None and max_tokens <= cap):
        return max_tokens
    out.changes.append(Change("max_tokens", max_tokens, cap, f"max_output_tokens={cap}"))
    return cap


def _clamp_budget(
    reasoning: Reasoning, cap: int | None, max_tokens: int | None, caps: ModelCaps, out: Outcome
) -> tuple[str, int | None]:
    """Lower `budget_tokens` to the cap and below `max_tokens`, or turn thinking off."""
    sent = budget = reasoning.budget_tokens
    assert sent is not None and budget is not None
    limit = None
    if cap is not None and budget > cap:
        budget, limit = cap, f"max_thinking_tokens={cap}"
    if max_tokens is not None and budget >= max_tokens:
        budget = max_tokens - 1
    if budget < MIN and caps.can_disable:
        reasoning.budget_tokens = None
        out.changes.append(Change("thinking.type", "enabled", "disabled",
                                  limit and f"{limit} is below {MIN}"))
        return "disabled", max_tokens
    if budget < MIN:  # cannot go off: keep the minimum and room above it
        budget = MIN
        if max_tokens is not None and max_tokens <= MIN:
            out.changes.append(Change("max_tokens", max_tokens, MIN + 1))
            max_tokens = MIN + 1
        if limit:
            out.unenforced.append(f"thinking budget kept at the minimum {MIN} (model cannot disable)")
    if budget != sent:
        reasoning.budget_tokens = budget
        out.changes.append(Change("thinking.budget_tokens", sent, budget, limit))
    return "enabled", max_tokens


def _clamp_effort(
    reasoning: Reasoning, limits: Limits, caps: ModelCaps, state: str | None, out: Outcome
) -> None:
    """Lower `output_config.effort` where the model takes it; keep Opus 5's disable rule."""
    if not caps.efforts:
        return
    current = effective_effort(reasoning.effort, caps)
    lowered = lower_effort(current, caps.efforts, limits, "output_config.effort", out)
    if lowered != current:
        reasoning.effort = current = lowered
    ceiling = caps.disable_max_effort
    if state == "disabled" and ceiling and current is not None and rank(current) > rank(ceiling):
        out.changes.append(Change("output_config.effort", current, ceiling))
        reasoning.effort = ceiling


def figures(
    reasoning: Reasoning, max_tokens: int | None, caps: ModelCaps, limits: Limits,
    state: str | None = None,
) -> Figures:
    """Budget (adaptive thinking counts at its effort's nominal budget), effort, output cap."""
    state = state or reasoning.thinking or ("adaptive" if caps.thinking_default_on else None)
    effort = effective_effort(reasoning.effort, caps) if caps.efforts else None
    if state == "enabled":
        tokens = reasoning.budget_tokens
    elif state == "adaptive":
        tokens = nominal(effort or "high", limits.budgets)
    else:
        tokens = 0
    return Figures(tokens, effort, max_tokens)
