"""What each model family accepts for reasoning, from PROVIDER_SEMANTICS.md §3.

Looked up by glob, first match wins, on the model name without a router prefix
(`openai/gpt-5` reads as `gpt-5`). An unknown model gets `UNKNOWN`: tokenopt
then only lowers values the client itself sent, never invents one.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from tokenopt.dialects.base import Usage
from tokenopt.plugins.thinking.settings import EFFORTS, Effort, rank
from tokenopt.pricing import PriceBook

ThinkingStyle = Literal["budget", "both", "adaptive", "none"]
ANTHROPIC_MIN_BUDGET = 1024


@dataclass(frozen=True, slots=True)
class ModelCaps:
    """Reasoning knobs of one model family.

    Attributes:
        efforts: effort values the model accepts; empty when it takes none.
        default_effort: the effort used when none is sent; None when the model
            does not reason unless asked.
        thinking: Anthropic thinking style: `budget` (enabled + budget_tokens),
            `adaptive` (enabled is a 400), `both`, or `none`.
        thinking_default_on: an omitted `thinking` means adaptive thinking on.
        can_disable: thinking may be turned off (Anthropic `disabled`, Gemini 0).
        disable_max_effort: thinking may be disabled only at or below this effort.
        budget_range: Gemini `thinking_budget` bounds while thinking is on.
    """

    efforts: tuple[Effort, ...] = ()
    default_effort: Effort | None = None
    thinking: ThinkingStyle = "none"
    thinking_default_on: bool = False
    can_disable: bool = True
    disable_max_effort: Effort | None = None
    budget_range: tuple[int, int] | None = None


UNKNOWN = ModelCaps()
# What any OpenAI-style reasoning model takes; used when the client sent an effort
# for a model missing from the table (sending one proves the model reasons).
GENERIC_EFFORTS: tuple[Effort, ...] = ("low", "medium", "high")
_ANTHROPIC_FULL: tuple[Effort, ...] = ("low", "medium", "high", "xhigh", "max")

TABLE: tuple[tuple[str, ModelCaps], ...] = (
    # OpenAI (§3.2)
    ("gpt-5-pro*", ModelCaps(("high",), "high")),
    ("gpt-5.6*", ModelCaps(("none", "low", "medium", "high", "xhigh", "max"), None)),
    ("gpt-5.1-codex-max*", ModelCaps(("low", "medium", "high", "xhigh"), "medium")),
    ("gpt-5.1*", ModelCaps(("none", "low", "medium", "high"), None)),
    ("gpt-5.[2-5]*", ModelCaps(("none", "low", "medium", "high", "xhigh"), None)),
    ("gpt-5*", ModelCaps(("minimal", "low", "medium", "high"), "medium")),
    ("o1-mini*", ModelCaps((), "medium")),
    ("o[134]*", ModelCaps(("low", "medium", "high"), "medium")),
    ("gpt-oss*", ModelCaps(("low", "medium", "high"), "medium")),
    ("gpt-4*", UNKNOWN),
    # Anthropic (§3.1)
    ("claude-opus-5-5*", ModelCaps(_ANTHROPIC_FULL, "medium", "adaptive", True, can_disable=False)),
    ("claude-fable*", ModelCaps(_ANTHROPIC_FULL, "high", "adaptive", True, can_disable=False)),
    ("claude-opus-5*", ModelCaps(_ANTHROPIC_FULL, "high", "adaptive", True,
                                 disable_max_effort="high")),
    ("claude-sonnet-5*", ModelCaps(_ANTHROPIC_FULL, "high", "adaptive", True)),
    ("claude-opus-4-[78]*", ModelCaps(_ANTHROPIC_FULL, "high", "adaptive")),
    ("claude-*-4-6*", ModelCaps(("low", "medium", "high", "max"), "high", "both")),
    ("claude-opus-4-5*", ModelCaps(("low", "medium", "high"), "high", "budget")),
    ("claude-*", ModelCaps((), None, "budget")),
    # Gemini (§3.3), through its OpenAI-compatible endpoint
    ("gemini-2.5-pro*", ModelCaps(budget_range=(128, 32768), can_disable=False)),
    ("gemini-2.5-flash-lite*", ModelCaps(budget_range=(512, 24576))),
    ("gemini-2.5-flash*", ModelCaps(budget_range=(1, 24576))),
    ("gemini-3-pro*", ModelCaps(("low", "high"), "high")),
    ("gemini-3*", ModelCaps(("minimal", "low", "medium", "high"), "high")),
)


def caps_for(model: str | None) -> ModelCaps:
    """The capabilities of a model, `UNKNOWN` when no entry matches."""
    if not model:
        return UNKNOWN
    name = model.rsplit("/", 1)[-1].lower()
    for glob, caps in TABLE:
        if fnmatchcase(name, glob):
            return caps
    return UNKNOWN


def effort_for_budget(tokens: int, budgets: dict[Effort, int]) -> Effort:
    """The highest effort whose nominal budget fits in `tokens` (`none` at worst)."""
    fitting = [effort for effort in EFFORTS if budgets.get(effort, 0) <= tokens]
    return fitting[-1] if fitting else "none"


def fit_effort(cap: str, accepted: tuple[Effort, ...]) -> Effort:
    """The highest accepted effort not above `cap`; the lowest accepted if none is."""
    below = [effort for effort in accepted if rank(effort) <= rank(cap)]
    return max(below, key=rank) if below else min(accepted, key=rank)


def output_price(model: str | None, overrides: dict[str, float]) -> float | None:
    """USD per 1M output tokens for a model: the settings' globs first, then the price book."""
    if not model:
        return None
    name = model.rsplit("/", 1)[-1].lower()
    for glob, price in overrides.items():
        if fnmatchcase(name, glob):
            return price
    cost = _PRICES.cost(name, Usage(output_tokens=1_000_000))
    return cost.output_usd if cost.priced else None


_PRICES = PriceBook()
