"""What a rule asks for, and what enforcing it changed: shared by every dialect's enforcer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenopt.dialects.base import RequestView
from tokenopt.plugins.thinking.models import ModelCaps, effort_for_budget, fit_effort
from tokenopt.plugins.thinking.settings import Effort, Rule, rank


@dataclass(frozen=True, slots=True)
class Limits:
    """A rule's limits, with the effort cap its token budget implies folded in."""

    thinking_tokens: int | None
    effort: Effort | None
    output_tokens: int | None
    budgets: dict[Effort, int]

    @classmethod
    def of(cls, rule: Rule, budgets: dict[Effort, int]) -> Limits:
        return cls(rule.max_thinking_tokens, rule.max_effort, rule.max_output_tokens, budgets)

    def effort_cap(self) -> Effort | None:
        """The lower of `max_effort` and the effort a token budget allows."""
        caps: list[Effort] = [e for e in (self.effort,) if e is not None]
        if self.thinking_tokens is not None:
            caps.append(effort_for_budget(self.thinking_tokens, self.budgets))
        if not caps:
            return None
        lowest: Effort = min(caps, key=rank)
        return lowest

    def budget_cap(self, caps: ModelCaps) -> int | None:
        """The token budget cap; `max_effort` counts too where the model takes no effort."""
        values = [v for v in (self.thinking_tokens,) if v is not None]
        if self.effort is not None and not caps.efforts:
            values.append(self.budgets[self.effort])
        return min(values) if values else None


@dataclass(frozen=True, slots=True)
class Change:
    """One field rewritten; `limit` names the rule limit behind it (None: a validity fix)."""

    field: str
    before: Any
    after: Any
    limit: str | None = None

    def exceeds(self) -> str:
        """The violation in a reject error: what the client sent and the limit it passes."""
        before = "unset (unbounded)" if self.before is None else repr(self.before)
        return f"{self.field} {before} exceeds {self.limit}"

    def describe(self) -> str:
        if self.before == self.after:
            return f"{self.field} {self.before!r} exceeds {self.limit}; nothing lower is accepted"
        before = "unset" if self.before is None else repr(self.before)
        after = "removed" if self.after is None else repr(self.after)
        why = f" ({self.limit})" if self.limit else " (keeps the request valid)"
        return f"{self.field} {before} -> {after}{why}"


@dataclass(frozen=True, slots=True)
class Figures:
    """Reasoning spend a request allows: token budget (equivalent), effort, output cap.

    None means unbounded (or unknown) for token figures, and no effort for `effort`.
    """

    thinking_tokens: int | None
    effort: str | None
    output_tokens: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"thinking_tokens": self.thinking_tokens, "effort": self.effort,
                "max_output_tokens": self.output_tokens}


@dataclass(slots=True)
class Outcome:
    """The clamped view, the changes made, and what remains over a limit."""

    view: RequestView
    changes: list[Change] = field(default_factory=list)
    unenforced: list[str] = field(default_factory=list)
    requested: Figures | None = None
    enforced: Figures | None = None

    @property
    def violations(self) -> list[Change]:
        """Changes a limit forced: the request as sent exceeds the rule."""
        return [change for change in self.changes if change.limit]


def effective_effort(explicit: str | None, caps: ModelCaps) -> str | None:
    """The effort a request runs at: the one sent, else the model's default."""
    return explicit if explicit is not None else caps.default_effort


def nominal(effort: str | None, budgets: dict[Effort, int]) -> int | None:
    """The nominal token budget of an effort (0 for no reasoning, None when unknown)."""
    if effort is None:
        return 0
    return budgets.get(effort)  # type: ignore[call-overload, no-any-return]


def lower_effort(
    current: str | None, accepted: tuple[str, ...], limits: Limits, field: str, out: Outcome
) -> str | None:
    """The effort to run at: `current`, or the nearest accepted one at or below the cap."""
    cap = limits.effort_cap()
    if current is None or cap is None or rank(current) <= rank(cap):
        return current
    if not accepted:
        out.unenforced.append(f"the model takes no effort setting; {field} left unset")
        return current
    lowered = fit_effort(cap, accepted)  # type: ignore[arg-type]
    if rank(lowered) > rank(cap):
        out.unenforced.append(f"{lowered!r} is the lowest effort the model accepts")
    if lowered != current:
        out.changes.append(Change(field, current, lowered, f"max effort {cap!r}"))
    elif rank(current) > rank(cap):
        # Nothing to write, but the request still exceeds the rule.
        out.changes.append(Change(field, current, current, f"max effort {cap!r}"))
    return lowered
