"""The `[plugins.thinking]` table: ordered rules, each a match and the limits it sets."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tokenopt.dialects.base import RequestView

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
EFFORTS: tuple[Effort, ...] = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
Mode = Literal["clamp", "reject", "observe"]
UpstreamKind = Literal["openai", "vllm", "qwen", "gemini-openai"]

# Nominal reasoning tokens per effort: only used to turn a token budget into an
# effort (and back) for APIs that take no token budget. Low matches Anthropic's
# 1024 minimum and Gemini's OpenAI-compatible mapping (low 1024, medium 8192, high 24576).
DEFAULT_EFFORT_BUDGETS: dict[Effort, int] = {
    "none": 0, "minimal": 256, "low": 1024, "medium": 8192, "high": 24576,
    "xhigh": 49152, "max": 98304,
}


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Table):
    """Globs over the request; an absent key matches anything."""

    route: str | None = None
    model: str | None = None
    tenant: str | None = None
    task: str | None = None

    def matches(self, view: RequestView) -> bool:
        pairs = ((self.route, view.route), (self.model, view.model), (self.task, view.task))
        return all(glob is None or (value is not None and fnmatchcase(value, glob))
                   for glob, value in pairs) and self._tenant_matches(view)

    def _tenant_matches(self, view: RequestView) -> bool:
        """`tenant` globs the API-key digest or the `x-tokenopt-tenant` label."""
        if self.tenant is None:
            return True
        return any(value is not None and fnmatchcase(value, self.tenant)
                   for value in (view.tenant, view.tenant_label))


class Rule(_Table):
    """One policy. `name` appears in notes and in reject errors (default: `rule[i]`)."""

    name: str | None = None
    match: Match = Match()
    max_thinking_tokens: int | None = Field(default=None, ge=0)
    max_effort: Effort | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    mode: Mode = "clamp"

    @model_validator(mode="after")
    def _sets_a_limit(self) -> Rule:
        if (self.max_thinking_tokens, self.max_effort, self.max_output_tokens) == (None,) * 3:
            raise ValueError("a rule needs max_thinking_tokens, max_effort or max_output_tokens")
        return self


class ThinkingSettings(_Table):
    """Settings of the `thinking` plugin.

    `upstream_kind` says which extra fields an OpenAI-compatible upstream takes
    (vLLM `chat_template_kwargs.enable_thinking`, Qwen `enable_thinking` /
    `thinking_budget`, Gemini `extra_body.google.thinking_config`). `hard_cap`
    ends streamed answers whose reasoning passes the budget, for upstreams that
    do not enforce one. `output_prices` (USD per 1M output tokens, by model glob)
    override the price book (genai-prices) used to price what a cap withheld.
    """

    rules: list[Rule] = []
    upstream_kind: UpstreamKind = "openai"
    hard_cap: bool = False
    reject_status: Literal[400, 422] = 400
    effort_budgets: dict[Effort, int] = Field(default_factory=lambda: dict(DEFAULT_EFFORT_BUDGETS))
    output_prices: dict[str, float] = {}

    @field_validator("effort_budgets")
    @classmethod
    def _complete_budgets(cls, value: dict[Effort, int]) -> dict[Effort, int]:
        # A partial table overrides some efforts; the rest keep their defaults.
        return {**DEFAULT_EFFORT_BUDGETS, **value}

    def rule_for(self, view: RequestView) -> tuple[str, Rule] | None:
        """The first rule whose match fits the request, with its display name."""
        for index, rule in enumerate(self.rules):
            if rule.match.matches(view):
                return rule.name or f"rule[{index}]", rule
        return None


def rank(effort: str) -> int:
    """Position in the effort order; unknown names rank above every known one."""
    return EFFORTS.index(effort) if effort in EFFORTS else len(EFFORTS)
