"""Every dialect x mode x edge case: what clamp writes, when reject refuses, that observe only notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.plugins.thinking.support import CHAT, MESSAGES, RESPONSES, run
from tokenopt.exceptions import PolicyRejected

MSGS = [{"role": "user", "content": "Classify: great product"}]
UNCHANGED = None


@dataclass
class Case:
    id: str
    path: str
    body: dict[str, Any]
    rule: dict[str, Any]
    # Top-level fields of the clamped body that differ from the client's (None: removed);
    # UNCHANGED when clamp must forward the client's bytes.
    clamped: dict[str, Any] | None
    violates: bool
    settings: dict[str, Any] = field(default_factory=dict)


def anthropic(model: str, **body: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 8000, "messages": MSGS, **body}


def chat(model: str, **body: Any) -> dict[str, Any]:
    return {"model": model, "messages": MSGS, **body}


ENABLED = {"type": "enabled", "budget_tokens": 6000}
CASES = [
    # Anthropic, budget-style models (Sonnet 4.5: no effort field at all).
    Case("anthropic-no-thinking-asked", MESSAGES, anthropic("claude-sonnet-4-5"),
         {"max_thinking_tokens": 2000}, UNCHANGED, False),
    Case("anthropic-complies", MESSAGES, anthropic("claude-sonnet-4-5", thinking=ENABLED),
         {"max_thinking_tokens": 8000, "max_output_tokens": 8000}, UNCHANGED, False),
    Case("anthropic-budget-clamped", MESSAGES, anthropic("claude-sonnet-4-5", thinking=ENABLED),
         {"max_thinking_tokens": 2000}, {"thinking": {"type": "enabled", "budget_tokens": 2000}}, True),
    Case("anthropic-below-minimum-turns-thinking-off", MESSAGES,
         anthropic("claude-sonnet-4-5", thinking=ENABLED), {"max_thinking_tokens": 500},
         {"thinking": {"type": "disabled"}}, True),
    Case("anthropic-budget-kept-below-clamped-max-tokens", MESSAGES,
         anthropic("claude-sonnet-4-5", thinking=ENABLED), {"max_output_tokens": 4000},
         {"max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 3999}}, True),
    Case("anthropic-client-budget-at-max-tokens-is-made-valid", MESSAGES,
         anthropic("claude-sonnet-4-5", thinking={"type": "enabled", "budget_tokens": 8000}),
         {"max_thinking_tokens": 10000},
         {"thinking": {"type": "enabled", "budget_tokens": 7999}}, False),
    Case("anthropic-max-tokens-too-small-for-thinking-turns-it-off", MESSAGES,
         anthropic("claude-sonnet-4-5", thinking=ENABLED), {"max_output_tokens": 1000},
         {"max_tokens": 1000, "thinking": {"type": "disabled"}}, True),
    Case("anthropic-effort-cap-becomes-a-budget-where-effort-is-refused", MESSAGES,
         anthropic("claude-haiku-4-5", thinking=ENABLED), {"max_effort": "low"},
         {"thinking": {"type": "enabled", "budget_tokens": 1024}}, True),
    # Anthropic, adaptive/effort models.
    Case("anthropic-adaptive-effort-lowered", MESSAGES,
         anthropic("claude-opus-4-7", thinking={"type": "adaptive"}, output_config={"effort": "max"}),
         {"max_effort": "high"}, {"output_config": {"effort": "high"}}, True),
    Case("anthropic-budget-becomes-effort-on-adaptive-models", MESSAGES,
         anthropic("claude-opus-4-7", thinking={"type": "adaptive"}), {"max_thinking_tokens": 4096},
         {"output_config": {"effort": "low"}}, True),
    Case("anthropic-default-on-model-is-disabled-below-minimum", MESSAGES,
         anthropic("claude-sonnet-5"), {"max_thinking_tokens": 0},
         {"thinking": {"type": "disabled"}, "output_config": {"effort": "low"}}, True),
    Case("anthropic-model-that-cannot-disable-keeps-thinking-at-lowest-effort", MESSAGES,
         anthropic("claude-opus-5-5"), {"max_thinking_tokens": 0},
         {"output_config": {"effort": "low"}}, True),
    Case("anthropic-opus-5-disables-only-at-or-below-high", MESSAGES,
         anthropic("claude-opus-5", output_config={"effort": "max"}),
         {"max_thinking_tokens": 500, "max_effort": "max"},
         {"thinking": {"type": "disabled"}, "output_config": {"effort": "low"}}, True),
    # OpenAI Chat Completions.
    Case("chat-non-reasoning-model-gets-no-effort", CHAT, chat("gpt-4.1"),
         {"max_thinking_tokens": 0}, UNCHANGED, False),
    Case("chat-complies", CHAT, chat("gpt-5", reasoning_effort="low", max_completion_tokens=500),
         {"max_effort": "medium", "max_output_tokens": 1000}, UNCHANGED, False),
    Case("chat-model-default-effort-counts", CHAT, chat("gpt-5"), {"max_effort": "low"},
         {"reasoning_effort": "low"}, True),
    Case("chat-gpt-5-has-no-none-so-minimal", CHAT, chat("gpt-5", reasoning_effort="high"),
         {"max_thinking_tokens": 0}, {"reasoning_effort": "minimal"}, True),
    Case("chat-gpt-5.1-takes-none", CHAT, chat("gpt-5.1", reasoning_effort="high"),
         {"max_thinking_tokens": 0}, {"reasoning_effort": "none"}, True),
    Case("chat-gpt-5.1-default-none-is-left-alone", CHAT, chat("gpt-5.1"),
         {"max_effort": "low"}, UNCHANGED, False),
    Case("chat-gpt-5-pro-accepts-only-high", CHAT, chat("gpt-5-pro", reasoning_effort="high"),
         {"max_effort": "low"}, UNCHANGED, True),
    Case("chat-o-series-has-no-minimal", CHAT, chat("o3", reasoning_effort="high"),
         {"max_effort": "minimal"}, {"reasoning_effort": "low"}, True),
    Case("chat-budget-maps-to-nearest-effort-below", CHAT, chat("o4-mini", reasoning_effort="high"),
         {"max_thinking_tokens": 10000}, {"reasoning_effort": "medium"}, True),
    Case("chat-unknown-model-lowered-only-within-common-efforts", CHAT,
         chat("acme-reasoner", reasoning_effort="high"), {"max_effort": "minimal"},
         {"reasoning_effort": "low"}, True),
    Case("chat-output-cap-keeps-the-clients-key", CHAT, chat("gpt-4.1", max_tokens=4000),
         {"max_output_tokens": 1000}, {"max_tokens": 1000}, True),
    Case("chat-output-cap-set-when-absent", CHAT, chat("gpt-5-mini", reasoning_effort="low"),
         {"max_output_tokens": 1000}, {"max_completion_tokens": 1000}, True),
    # OpenAI Responses.
    Case("responses-effort-lowered-summary-kept", RESPONSES,
         {"model": "gpt-5", "input": "hi", "reasoning": {"effort": "high", "summary": "auto"}},
         {"max_effort": "low"}, {"reasoning": {"effort": "low", "summary": "auto"}}, True),
    Case("responses-gpt-5.1-budget-zero-is-none", RESPONSES,
         {"model": "gpt-5.1", "input": "hi", "reasoning": {"effort": "medium"},
          "max_output_tokens": 9000},
         {"max_thinking_tokens": 0, "max_output_tokens": 2000},
         {"reasoning": {"effort": "none"}, "max_output_tokens": 2000}, True),
    Case("responses-no-thinking-asked", RESPONSES, {"model": "gpt-4.1", "input": "hi"},
         {"max_effort": "low"}, UNCHANGED, False),
    # OpenAI-compatible upstreams with their own thinking fields.
    Case("vllm-budget-zero-disables-via-chat-template", CHAT,
         chat("Qwen/Qwen3-8B", chat_template_kwargs={"foo": 1}), {"max_thinking_tokens": 0},
         {"chat_template_kwargs": {"foo": 1, "enable_thinking": False}}, True,
         {"upstream_kind": "vllm"}),
    Case("vllm-already-off-complies", CHAT,
         chat("Qwen/Qwen3-8B", chat_template_kwargs={"enable_thinking": False}),
         {"max_thinking_tokens": 0}, UNCHANGED, False, {"upstream_kind": "vllm"}),
    Case("qwen-budget-clamped", CHAT,
         chat("qwen-plus", enable_thinking=True, thinking_budget=8000), {"max_thinking_tokens": 2000},
         {"thinking_budget": 2000}, True, {"upstream_kind": "qwen"}),
    Case("qwen-budget-zero-turns-thinking-off", CHAT, chat("qwen-plus", enable_thinking=True),
         {"max_thinking_tokens": 0}, {"enable_thinking": False}, True, {"upstream_kind": "qwen"}),
    Case("qwen-no-thinking-asked", CHAT, chat("qwen-plus"), {"max_thinking_tokens": 0},
         UNCHANGED, False, {"upstream_kind": "qwen"}),
    Case("gemini-budget-replaces-effort", CHAT, chat("gemini-2.5-flash", reasoning_effort="high"),
         {"max_thinking_tokens": 2000},
         {"reasoning_effort": None,
          "extra_body": {"google": {"thinking_config": {"thinking_budget": 2000}}}},
         True, {"upstream_kind": "gemini-openai"}),
    Case("gemini-dynamic-default-is-capped", CHAT, chat("gemini-2.5-flash"),
         {"max_thinking_tokens": 4096},
         {"extra_body": {"google": {"thinking_config": {"thinking_budget": 4096}}}},
         True, {"upstream_kind": "gemini-openai"}),
    Case("gemini-pro-cannot-disable-so-minimum", CHAT, chat("gemini-2.5-pro"),
         {"max_thinking_tokens": 0},
         {"extra_body": {"google": {"thinking_config": {"thinking_budget": 128}}}},
         True, {"upstream_kind": "gemini-openai"}),
    Case("gemini-flash-lite-below-its-minimum-is-off", CHAT, chat("gemini-2.5-flash-lite"),
         {"max_thinking_tokens": 100},
         {"extra_body": {"google": {"thinking_config": {"thinking_budget": 0}}}},
         True, {"upstream_kind": "gemini-openai"}),
    Case("gemini-complies", CHAT,
         chat("gemini-2.5-flash", extra_body={"google": {"thinking_config": {"thinking_budget": 512}}}),
         {"max_thinking_tokens": 4096}, UNCHANGED, False, {"upstream_kind": "gemini-openai"}),
]
IDS = [case.id for case in CASES]


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    keys = set(before) | set(after)
    return {k: after.get(k) for k in keys if before.get(k) != after.get(k)}


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_clamp_writes_only_the_limited_fields_in_the_dialects_terms(case: Case) -> None:
    rendered, notes = await run(case.path, case.body, {**case.rule, "mode": "clamp"}, **case.settings)
    if case.clamped is UNCHANGED:
        assert rendered is None
        assert ("changes" in notes) == case.violates  # a limit nothing can meet is still noted
    else:
        assert rendered is not None and diff(case.body, rendered) == case.clamped
        assert notes["changes"] and notes["enforced"] != notes["requested"]


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_reject_refuses_exactly_the_requests_over_a_limit(case: Case) -> None:
    rule = {**case.rule, "mode": "reject", "name": "budget-policy"}
    if not case.violates:
        rendered, notes = await run(case.path, case.body, rule, **case.settings)
        assert rendered is None and "rejected" not in notes
        return
    with pytest.raises(PolicyRejected) as caught:
        await run(case.path, case.body, rule, **case.settings)
    assert caught.value.status == 400 and caught.value.rule == "budget-policy"
    limit_named = {"max_thinking_tokens", "max_output_tokens", "max effort"}
    assert "'budget-policy'" in str(caught.value)
    assert any(name in str(caught.value) for name in limit_named)


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_observe_forwards_the_clients_bytes_and_notes_what_clamp_would_do(case: Case) -> None:
    rendered, notes = await run(case.path, case.body, {**case.rule, "mode": "observe"},
                                **case.settings)
    assert rendered is None
    assert notes["mode"] == "observe"
    assert ("changes" in notes) == (case.clamped is not UNCHANGED or case.violates)


@pytest.mark.anyio
async def test_reject_status_can_be_422() -> None:
    with pytest.raises(PolicyRejected) as caught:
        await run(CHAT, chat("gpt-5"), {"max_effort": "low", "mode": "reject"}, reject_status=422)
    assert caught.value.status == 422
    assert "reasoning_effort 'medium' exceeds max effort 'low'" in str(caught.value)


@pytest.mark.anyio
async def test_a_model_that_cannot_go_lower_is_reported_as_unenforced() -> None:
    _, notes = await run(CHAT, chat("gpt-5-pro", reasoning_effort="high"), {"max_effort": "low"})
    assert notes["unenforced"] == ["'high' is the lowest effort the model accepts"]
    assert notes["changes"] == [
        "reasoning_effort 'high' exceeds max effort 'low'; nothing lower is accepted"
    ]


@pytest.mark.anyio
async def test_clamp_notes_requested_and_enforced_figures() -> None:
    _, notes = await run(MESSAGES, anthropic("claude-sonnet-4-5", thinking=ENABLED),
                         {"max_thinking_tokens": 2000, "name": "cheap"})
    assert notes["rule"] == "cheap"
    assert notes["requested"] == {"thinking_tokens": 6000, "effort": None, "max_output_tokens": 8000}
    assert notes["enforced"] == {"thinking_tokens": 2000, "effort": None, "max_output_tokens": 8000}
