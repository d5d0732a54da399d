"""Thinking knobs of OpenAI-compatible upstreams that are not OpenAI (§3.3).

Chosen by the `upstream_kind` setting, on top of the OpenAI rules for the
standard fields: vLLM/SGLang `chat_template_kwargs.enable_thinking`, Qwen
(DashScope) `enable_thinking` / `thinking_budget`, Gemini's
`extra_body.google.thinking_config.thinking_budget` (which may not be combined
with `reasoning_effort`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tokenopt.dialects.base import as_dict
from tokenopt.plugins.thinking.decision import Change, Limits, Outcome
from tokenopt.plugins.thinking.models import ModelCaps
from tokenopt.plugins.thinking.settings import UpstreamKind

# Gemini's OpenAI-compatible endpoint maps efforts to these budgets.
GEMINI_EFFORT_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}


def enforce(kind: UpstreamKind, out: Outcome, limits: Limits, caps: ModelCaps) -> Outcome:
    """Apply the upstream's own thinking fields to an already clamped Chat request."""
    if kind == "vllm":
        _vllm(out, limits)
    elif kind == "qwen":
        _qwen(out, limits)
    elif kind == "gemini-openai" and caps.budget_range is not None:
        _gemini(out, limits, caps)
    return out


def _wants_off(limits: Limits) -> bool:
    return limits.thinking_tokens == 0 or limits.effort == "none"


def _override(
    out: Outcome, key: str, value: Any, change: Change, thinking_tokens: int | None
) -> None:
    view = out.view
    out.view = dataclasses.replace(view, body_overrides={**view.body_overrides, key: value})
    out.changes.append(change)
    if out.enforced is not None:
        out.enforced = dataclasses.replace(out.enforced, thinking_tokens=thinking_tokens)


def _requested(out: Outcome, thinking_tokens: int | None) -> None:
    if out.requested is not None:
        out.requested = dataclasses.replace(out.requested, thinking_tokens=thinking_tokens)
    if out.enforced is not None and not out.changes:
        out.enforced = out.requested


def _budget_limit(limits: Limits) -> str:
    if limits.thinking_tokens is not None:
        return f"max_thinking_tokens={limits.thinking_tokens}"
    return f"max effort {limits.effort!r}"


def _vllm(out: Outcome, limits: Limits) -> None:
    kwargs = as_dict(out.view.body.get("chat_template_kwargs"))
    # Qwen3-style templates think unless told not to: the budget is unbounded.
    _requested(out, 0 if kwargs.get("enable_thinking") is False else None)
    if _wants_off(limits) and kwargs.get("enable_thinking") is not False:
        _override(out, "chat_template_kwargs", {**kwargs, "enable_thinking": False},
                  Change("chat_template_kwargs.enable_thinking", kwargs.get("enable_thinking"),
                         False, _budget_limit(limits)), 0)
    elif limits.thinking_tokens is not None:
        out.unenforced.append("vLLM takes no thinking budget; enable hard_cap for streams")


def _qwen(out: Outcome, limits: Limits) -> None:
    body = out.view.body
    if body.get("enable_thinking") is not True:
        return  # thinking is off unless asked for on Qwen's commercial models
    sent = body.get("thinking_budget")
    _requested(out, sent if isinstance(sent, int) else None)
    if _wants_off(limits):
        _override(out, "enable_thinking", False,
                  Change("enable_thinking", True, False, _budget_limit(limits)), 0)
        return
    cap = limits.thinking_tokens
    if cap is not None and (not isinstance(sent, int) or sent > cap):
        _override(out, "thinking_budget", cap,
                  Change("thinking_budget", sent, cap, f"max_thinking_tokens={cap}"), cap)


def _gemini(out: Outcome, limits: Limits, caps: ModelCaps) -> None:
    """Express the cap as `thinking_budget`, within the model's range, replacing any effort."""
    assert caps.budget_range is not None
    view = out.view
    extra = as_dict(view.body.get("extra_body"))
    google = as_dict(extra.get("google"))
    config = as_dict(google.get("thinking_config"))
    sent = config.get("thinking_budget")
    effort = view.body.get("reasoning_effort")
    current = sent if isinstance(sent, int) else GEMINI_EFFORT_BUDGETS.get(str(effort), -1)
    caps_tokens = [v for v in (limits.thinking_tokens,) if v is not None]
    label = _budget_limit(limits)
    if limits.effort is not None:
        caps_tokens.append(GEMINI_EFFORT_BUDGETS.get(limits.effort, 24576))
    if not caps_tokens or (current != -1 and current <= min(caps_tokens)):
        return  # -1 is dynamic: unbounded
    budget = _gemini_budget(min(caps_tokens), caps)
    if budget == current:
        return
    config = {**config, "thinking_budget": budget}
    _override(out, "extra_body", {**extra, "google": {**google, "thinking_config": config}},
              Change("extra_body.google.thinking_config.thinking_budget",
                     None if current == -1 else current, budget,
                     label), budget)
    if out.requested is not None:
        out.requested = dataclasses.replace(out.requested, thinking_tokens=None if current == -1
                                            else current)
    # The budget replaces any effort: both at once is a 400.
    out.changes = [change for change in out.changes if change.field != "reasoning_effort"]
    if effort is not None:
        out.view = dataclasses.replace(out.view, reasoning=dataclasses.replace(
            out.view.reasoning, effort=None))
        out.changes.append(Change("reasoning_effort", effort, None))


def _gemini_budget(cap: int, caps: ModelCaps) -> int:
    low, high = caps.budget_range or (0, cap)
    if cap < low:
        return 0 if caps.can_disable else low
    return min(cap, high)
