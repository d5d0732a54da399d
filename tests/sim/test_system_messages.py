"""Anthropic `system` messages inside `messages` (as current Claude Code sends them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tokenopt.sim import create_sim_app
from tokenopt.sim.reply import words

pytestmark = pytest.mark.anyio
HEADERS = {"x-api-key": "sk-system", "anthropic-version": "2023-06-01"}


def long_text(tokens: int) -> str:
    return words(b"system-messages", tokens)  # about one token a word


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_sim_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim") as http:
        yield http


def body(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64, "system": long_text(1500),
            "messages": messages}


async def test_a_system_message_after_the_first_turn_is_accepted(
        client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "Say hello."},
                {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": "In five words."}]
    answer = await client.post("/v1/messages", json=body(messages), headers=HEADERS)
    assert answer.status_code == 200, answer.text
    assert answer.json()["type"] == "message"


async def test_a_system_message_takes_text_only(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "Say hello."},
                {"role": "system", "content": [{"type": "image", "source": {}}]}]
    answer = await client.post("/v1/messages", json=body(messages), headers=HEADERS)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("messages.1.content")


async def test_other_roles_are_still_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/messages", json=body([{"role": "tool", "content": "x"}]),
                               headers=HEADERS)
    assert answer.status_code == 400
    assert "'user', 'assistant' or 'system'" in answer.json()["error"]["message"]


async def test_earlier_turns_stay_cached_across_a_system_message(
        client: httpx.AsyncClient) -> None:
    marked = {"type": "text", "text": long_text(1200), "cache_control": {"type": "ephemeral"}}
    first = [{"role": "user", "content": [marked]}]
    later = [*first, {"role": "system", "content": "Reminder: be brief."},
             {"role": "user", "content": "And now?"}]
    written = (await client.post("/v1/messages", json=body(first), headers=HEADERS)).json()
    read = (await client.post("/v1/messages", json=body(later), headers=HEADERS)).json()
    assert written["usage"]["cache_creation_input_tokens"] > 0
    assert read["usage"]["cache_read_input_tokens"] == written["usage"][
        "cache_creation_input_tokens"]
