"""Rule matching, settings validation, response figures, and the body_overrides seam."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.plugins.thinking.support import CHAT, MESSAGES, context, plugin, run
from tokenopt.dialects import OpenAIChatDialect, dialect_for
from tokenopt.dialects.base import Usage
from tokenopt.exceptions import ConfigError
from tokenopt.pipeline import ResponseView, build_plugins
from tokenopt.plugins.thinking import ThinkingPlugin

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 8000, "messages": [],
        "thinking": {"type": "enabled", "budget_tokens": 6000}}


@pytest.mark.anyio
@pytest.mark.parametrize(("match", "headers", "applies"), [
    ({"task": "classification"}, {"x-tokenopt-task": "classification"}, True),
    ({"task": "classification"}, {"x-tokenopt-task": "coding"}, False),
    ({"task": "classification"}, {}, False),
    ({"model": "claude-sonnet-*", "route": "/v1/messages"}, {}, True),
    ({"model": "claude-opus-*"}, {}, False),
    ({"tenant": "t_1"}, {}, True),
    ({"tenant": "t_2*"}, {}, False),
    ({"tenant": "team-search"}, {"x-tokenopt-tenant": "team-search"}, True),
    ({"tenant": "team-*"}, {"x-tokenopt-tenant": "other"}, False),
])
async def test_rules_match_on_route_model_tenant_and_task_globs(
    match: dict[str, Any], headers: dict[str, str], applies: bool
) -> None:
    rendered, notes = await run(MESSAGES, BODY, {"match": match, "max_thinking_tokens": 2000},
                                headers=headers)
    assert (rendered is not None) == applies and ("rule" in notes) == applies


@pytest.mark.anyio
async def test_the_first_matching_rule_wins() -> None:
    thinking = plugin([{"name": "a", "match": {"model": "claude-*"}, "max_thinking_tokens": 3000},
                       {"name": "b", "max_thinking_tokens": 1500}])
    view = OpenAIChatDialect().parse({"model": "claude-x", "messages": []}, tenant="t", headers={})
    assert thinking.settings.rule_for(view) is not None
    assert thinking.settings.rule_for(view)[0] == "a"  # type: ignore[index]


def test_settings_are_checked_at_startup() -> None:
    registry = {"thinking": ThinkingPlugin}
    with pytest.raises(ConfigError, match="needs max_thinking_tokens"):
        build_plugins(registry, {"thinking": {"rules": [{"mode": "clamp"}]}}, order=[])
    with pytest.raises(ConfigError, match="plugin 'thinking'"):
        build_plugins(registry, {"thinking": {"rules": [{"max_effort": "huge"}]}}, order=[])
    with pytest.raises(ConfigError, match="has no setting 'rule'"):
        build_plugins(registry, {"thinking": {"rule": []}}, order=[])


@pytest.mark.anyio
async def test_on_response_adds_used_tokens_cap_hits_and_the_saving_bound() -> None:
    thinking = plugin([{"max_thinking_tokens": 2000, "max_output_tokens": 3000}])
    body = {**BODY, "model": "claude-sonnet-4-5"}
    view = dialect_for("POST", MESSAGES)
    assert view is not None
    parsed = view.parse(json.loads(json.dumps(body)), tenant="t", headers={})
    ctx = context()
    final = await thinking.on_request(parsed, ctx)
    usage = Usage(input_tokens=10, output_tokens=3000, reasoning_tokens=1990)
    await thinking.on_response(ResponseView(final, 200, usage, True), ctx)
    assert ctx.notes["reasoning_tokens"] == 1990 and ctx.notes["hit_cap"] is True
    assert ctx.notes["thinking_tokens_withheld_max"] == 4000
    assert ctx.notes["output_cost_saved_usd_max"] == pytest.approx(4000 * 15 / 1e6)


@pytest.mark.anyio
async def test_an_answer_below_the_output_cap_did_not_hit_it() -> None:
    thinking = plugin([{"max_effort": "low", "max_output_tokens": 3000}])
    parsed = OpenAIChatDialect().parse({"model": "gpt-5", "messages": []}, tenant="t", headers={})
    ctx = context()
    final = await thinking.on_request(parsed, ctx)
    await thinking.on_response(ResponseView(final, 200, Usage(output_tokens=900,
                                                              reasoning_tokens=600), True), ctx)
    assert ctx.notes["hit_cap"] is False
    assert ctx.notes["thinking_tokens_withheld_max"] == 8192 - 1024  # medium -> low, nominal


def test_body_overrides_are_written_and_no_op_overrides_change_nothing() -> None:
    dialect = OpenAIChatDialect()
    view = dialect.parse({"model": "m", "messages": [], "enable_thinking": True}, tenant="t",
                         headers={})
    view.body_overrides = {"enable_thinking": True, "absent": None}
    assert dialect.render(view) is None
    view.body_overrides = {"enable_thinking": None, "thinking_budget": 10}
    assert dialect.render(view) == {"model": "m", "messages": [], "thinking_budget": 10}


@pytest.mark.anyio
async def test_chat_route_path_is_matched_too() -> None:
    rendered, _ = await run(CHAT, {"model": "gpt-5", "messages": []},
                            {"match": {"route": "/v1/chat/*"}, "max_effort": "low"})
    assert rendered is not None and rendered["reasoning_effort"] == "low"


@pytest.mark.anyio
async def test_effort_budgets_can_be_partly_overridden() -> None:
    rendered, _ = await run(CHAT, {"model": "o3", "messages": [], "reasoning_effort": "high"},
                            {"max_thinking_tokens": 3000}, effort_budgets={"medium": 3000})
    assert rendered is not None and rendered["reasoning_effort"] == "medium"
