"""The `thinking` plugin: match a rule, enforce it in the request's dialect, note the spend."""

from __future__ import annotations

from typing import Any, ClassVar

from tokenopt.dialects.base import RequestView, StreamEditor
from tokenopt.exceptions import PolicyRejected
from tokenopt.pipeline import PluginContext, ResponseView
from tokenopt.plugins.thinking import anthropic, compat, openai
from tokenopt.plugins.thinking.decision import Limits, Outcome
from tokenopt.plugins.thinking.models import caps_for, output_price
from tokenopt.plugins.thinking.settings import Rule, ThinkingSettings
from tokenopt.plugins.thinking.stream_cap import stream_cap_for


class ThinkingPlugin:
    """Caps thinking budgets, reasoning effort and output size per rule.

    On request it notes the rule, what the client asked for (`requested`), what
    was enforced (`enforced`, or `would_enforce` in observe mode) and each
    change; on response, the reasoning and output tokens the upstream reported,
    whether the answer hit the cap, and an upper bound of what the cap saved.
    """

    name: ClassVar[str] = "thinking"
    Settings: ClassVar[type[ThinkingSettings]] = ThinkingSettings
    # With no rules it does nothing, so `[plugins.thinking] rules = [...]` alone turns it on.
    enabled_by_default: ClassVar[bool] = True

    def __init__(self, settings: ThinkingSettings) -> None:
        self.settings = settings

    def enforce(self, view: RequestView, rule: Rule) -> Outcome:
        """The request clamped to `rule`, in its own dialect, whatever the rule's mode."""
        limits = Limits.of(rule, self.settings.effort_budgets)
        caps = caps_for(view.model)
        if view.dialect == "anthropic-messages":
            return anthropic.enforce(view, limits, caps)
        if view.dialect not in ("openai-chat", "openai-responses"):
            return Outcome(view, unenforced=[f"dialect {view.dialect!r} is not supported"])
        outcome = openai.enforce(view, limits, caps)
        if view.dialect == "openai-chat" and self.settings.upstream_kind != "openai":
            outcome = compat.enforce(self.settings.upstream_kind, outcome, limits, caps)
        return outcome

    async def on_request(self, view: RequestView, ctx: PluginContext) -> RequestView:
        found = self.settings.rule_for(view)
        if found is None:
            return view
        name, rule = found
        outcome = self.enforce(view, rule)
        assert outcome.requested is not None and outcome.enforced is not None
        ctx.notes.update(rule=name, mode=rule.mode, requested=outcome.requested.as_dict())
        if outcome.unenforced:
            ctx.notes["unenforced"] = outcome.unenforced
        if rule.mode == "reject" and outcome.violations:
            ctx.notes["rejected"] = [change.describe() for change in outcome.violations]
            reasons = "; ".join(change.exceeds() for change in outcome.violations)
            raise PolicyRejected(f"tokenopt budget rule '{name}': {reasons}",
                                 status=self.settings.reject_status, rule=name)
        key = "would_enforce" if rule.mode == "observe" else "enforced"
        changed = rule.mode != "reject" and bool(outcome.changes)
        ctx.notes[key] = (outcome.enforced if changed else outcome.requested).as_dict()
        if changed:
            ctx.notes["changes"] = [change.describe() for change in outcome.changes]
        return outcome.view if rule.mode == "clamp" else view

    def stream_editor(self, view: RequestView, ctx: PluginContext) -> StreamEditor | None:
        """A hard cap on streamed reasoning, when `hard_cap` is on and a clamp rule sets a budget."""
        found = self.settings.rule_for(view) if self.settings.hard_cap else None
        if found is None or found[1].mode != "clamp" or found[1].max_thinking_tokens is None:
            return None
        return stream_cap_for(view.dialect, found[1].max_thinking_tokens, ctx.counter, view.model)

    async def on_response(self, response: ResponseView, ctx: PluginContext) -> None:
        """Add what the upstream reported; `ctx.notes` starts with this request's notes."""
        notes = ctx.notes
        usage = response.usage
        if "rule" not in notes or usage is None or "rejected" in notes:
            return
        limits: dict[str, Any] = notes.get("enforced") or notes.get("would_enforce") or {}
        cap = limits.get("max_output_tokens")
        notes.update(
            reasoning_tokens=usage.reasoning_tokens,
            output_tokens=usage.output_tokens,
            hit_cap=bool(notes.get("stream_cut")) or (cap is not None and usage.output_tokens >= cap),
        )
        requested = notes["requested"].get("thinking_tokens")
        enforced = limits.get("thinking_tokens")
        if requested is None or enforced is None or requested <= enforced:
            return
        # At most the difference: the model may have stopped below either budget.
        withheld = requested - enforced
        notes["thinking_tokens_withheld_max"] = withheld
        price = output_price(response.request.model, self.settings.output_prices)
        if price is not None:
            notes["output_cost_saved_usd_max"] = round(withheld * price / 1e6, 8)
