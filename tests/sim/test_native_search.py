"""Provider-native tool search: deferred tools cost nothing until loaded, then are billed
where the provider puts them; the simulated model searches inside the call; requests the
providers refuse are refused.

Token figures are counts of the exact texts the provider is said to read, written out here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette

from tokenopt._sse import SSEParser
from tokenopt.serving import ServerThread
from tokenopt.sim import create_sim_app
from tokenopt.sim.anthropic_messages import MessagesRoute
from tokenopt.sim.openai_responses import ResponsesRoute
from tokenopt.sim.script import RECORDED_HEADER
from tokenopt.tokens import TokenCounter

COUNTER = TokenCounter()
CLAUDE = "claude-sonnet-4-5"  # minimum cacheable prefix: 1,024 tokens
GPT = "gpt-5"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ASK = "What is the weather in Paris?"
LONG = " ".join(["alpha beta gamma delta"] * 400)  # ~1,600 tokens: past every cache minimum

BM25 = {"type": "tool_search_tool_bm25_20251119", "name": "tool_search_tool_bm25"}
REGEX = {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"}
WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": CITY, "defer_loading": True}
EMAIL = {"name": "send_email", "description": "Send an email message to a recipient.",
         "input_schema": {"type": "object", "properties": {"to": {"type": "string"}}},
         "defer_loading": True}
INVOICE = {"name": "create_invoice", "description": "Create an invoice for a customer order.",
           "input_schema": {"type": "object", "properties": {"amount": {"type": "number"}}},
           "defer_loading": True}
CLAUDE_TOOLS = [BM25, WEATHER, EMAIL, INVOICE]
CALLED = {"content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                       "input": {"city": "Paris"}}], "usage": {"output_tokens": 30}}

FN_WEATHER = {"type": "function", "name": "get_weather",
              "description": "Current weather for a city.",
              "parameters": CITY, "defer_loading": True}
FN_ORDERS = {"type": "function", "name": "list_open_orders",
             "description": "Open orders of a customer.",
             "parameters": {"type": "object", "properties": {"customer": {"type": "string"}}},
             "defer_loading": True}
CRM = {"type": "namespace", "name": "crm", "description": "CRM lookups", "tools": [FN_ORDERS]}
HOSTED = {"type": "tool_search"}
CALLED_FN = {"output": [{"type": "function_call", "call_id": "call_1", "name": "get_weather",
                         "arguments": '{"city":"Paris"}'}], "usage": {"output_tokens": 20}}


def text(value: Any) -> str:
    """Compact JSON: how the simulator renders a tool or a non-text block."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def bare(block: dict[str, Any]) -> str:
    """A content block after a message's first: its type, then its other fields."""
    return f"{block['type']}\n{text({k: v for k, v in block.items() if k != 'type'})}"


def count(*texts: str, model: str = CLAUDE) -> int:
    return sum(COUNTER.count(t, model) for t in texts)


def claude(tools: list[Any], messages: list[Any], **extra: Any) -> dict[str, Any]:
    return {"model": CLAUDE, "max_tokens": 256, "tools": tools, "messages": messages, **extra}


def responses(tools: list[Any], items: list[Any] | str, **extra: Any) -> dict[str, Any]:
    return {"model": GPT, "tools": tools, "input": items, **extra}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    app = create_sim_app(counter=COUNTER)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


async def post(sim: httpx.AsyncClient, path: str, body: dict[str, Any],
               recorded: dict[str, Any] | None = None) -> tuple[httpx.Response, Any]:
    headers = {"x-api-key": "k", "authorization": "Bearer k"}
    if recorded is not None:
        sim.app.state.script.add("line", recorded)  # type: ignore[attr-defined]
        headers[RECORDED_HEADER] = "line"
    response = await sim.post(path, json=body, headers=headers)
    bills = sim.app.state.bills  # type: ignore[attr-defined]
    return response, bills[-1] if bills else None


def sse(response: httpx.Response) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.event, json.loads(e.data)) for e in SSEParser().feed(response.content) if e.data]


# --- deferred tools in the prompt ---------------------------------------------------------

def test_anthropic_deferred_tools_add_no_tokens_until_referenced() -> None:
    prompt = MessagesRoute().prompt(claude(CLAUDE_TOOLS, [{"role": "user", "content": ASK}]),
                                    COUNTER)

    assert [(s.kind, s.text) for s in prompt.segments] == [
        ("tool", text(BM25)), ("message", f"user\n{ASK}")]
    assert prompt.tokens == count(text(BM25), f"user\n{ASK}")


def test_an_mcp_toolset_is_a_small_segment_not_a_crash() -> None:
    toolset = {"type": "mcp_toolset", "mcp_server_name": "gh",
               "default_config": {"enabled": True, "defer_loading": True},
               "configs": {"search_issues": {"defer_loading": False}}}
    prompt = MessagesRoute().prompt(claude([BM25, toolset], [{"role": "user", "content": ASK}]),
                                    COUNTER)
    assert prompt.segments[1].text == '{"type":"mcp_toolset","mcp_server_name":"gh"}'


SERVER_USE = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "tool_search_tool_bm25",
              "input": {"query": ASK}}
RESULT = {"type": "tool_search_tool_result", "tool_use_id": "srvtoolu_1",
          "content": {"type": "tool_search_tool_search_result",
                      "tool_references": [{"type": "tool_reference", "tool_name": "get_weather"}]}}
USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
ANSWER = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 21C"}
SEARCHED = [{"role": "user", "content": ASK},
            {"role": "assistant", "content": [SERVER_USE, RESULT, USE]},
            {"role": "user", "content": [ANSWER]}]


def test_a_search_result_reference_bills_the_definition_where_it_sits() -> None:
    prompt = MessagesRoute().prompt(claude(CLAUDE_TOOLS, SEARCHED), COUNTER)

    result_text = "\n".join(["tool_search_tool_result", text(RESULT["content"]),
                             text({"tool_use_id": "srvtoolu_1"}), text(WEATHER)])
    assert [s.text for s in prompt.segments] == [
        text(BM25), f"user\n{ASK}", f"assistant\n{text(SERVER_USE)}", result_text, bare(USE),
        f"user\n{text(ANSWER)}"]
    assert prompt.tokens == count(*(s.text for s in prompt.segments))
    # Only the referenced tool joined the prompt; the other deferred ones still cost nothing.
    assert all("send_email" not in s.text and "create_invoice" not in s.text
               for s in prompt.segments)


def test_a_reference_in_a_clients_own_tool_result_loads_the_tool_there() -> None:
    finder = {"name": "find_tools", "description": "Find tools.",
              "input_schema": {"type": "object"}}
    reference = {"type": "tool_result", "tool_use_id": "toolu_0",
                 "content": [{"type": "tool_reference", "tool_name": "get_weather"}]}
    messages = [{"role": "user", "content": ASK},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0",
                                                   "name": "find_tools", "input": {}}]},
                {"role": "user", "content": [reference]}]
    prompt = MessagesRoute().prompt(claude([finder, WEATHER, EMAIL], messages), COUNTER)

    assert prompt.segments[0].text == text(finder)
    assert prompt.segments[-1].text == f"user\n{text(reference)}\n{text(WEATHER)}"
    assert sum("get_weather" in s.text and '"input_schema"' in s.text
               for s in prompt.segments) == 1


def test_responses_deferred_functions_show_their_name_and_description_namespaces_only_theirs(
) -> None:
    visible = {"type": "function", "name": "ping", "parameters": {"type": "object"}}
    prompt = ResponsesRoute().prompt(responses([HOSTED, visible, FN_WEATHER, CRM], ASK), COUNTER)

    weather_stub = {"type": "function", "name": "get_weather",
                    "description": "Current weather for a city.", "defer_loading": True}
    assert [s.text for s in prompt.segments] == [
        '{"type":"tool_search"}', text(visible), text(weather_stub),
        '{"type":"namespace","name":"crm","description":"CRM lookups"}', f"user\n{ASK}"]
    assert prompt.tokens == count(*(s.text for s in prompt.segments), model=GPT)


SEARCH_CALL = {"type": "tool_search_call", "call_id": "call_s", "execution": "server",
               "status": "completed", "arguments": {"query": ASK}}
SEARCH_OUTPUT = {"type": "tool_search_output", "call_id": "call_s", "execution": "server",
                 "status": "completed", "tools": [FN_WEATHER]}
FN_CALL = {"type": "function_call", "call_id": "call_1", "name": "get_weather",
           "arguments": '{"city":"Paris"}'}
FN_OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 21C"}


def test_a_tool_search_output_appends_its_tools_after_the_input() -> None:
    items = [{"role": "user", "content": ASK}, SEARCH_CALL, SEARCH_OUTPUT, FN_CALL, FN_OUTPUT]
    prompt = ResponsesRoute().prompt(responses([HOSTED, FN_WEATHER], items), COUNTER)

    shown = {k: v for k, v in SEARCH_OUTPUT.items() if k not in ("tools", "type")}
    assert [(s.kind, s.text) for s in prompt.segments][4] == (
        "message", f"tool_search_output\n{text(shown)}")
    assert (prompt.segments[-1].kind, prompt.segments[-1].text) == ("tool", text(FN_WEATHER))
    assert sum('"parameters"' in s.text for s in prompt.segments) == 1


# --- the cache keeps the prefix before a load ---------------------------------------------

@pytest.mark.anyio
async def test_anthropic_prefix_before_a_load_is_still_read_from_cache(
        sim: httpx.AsyncClient) -> None:
    system = [{"type": "text", "text": LONG}]
    first_turn = [{"role": "user", "content": [{"type": "text", "text": ASK,
                                                "cache_control": {"type": "ephemeral"}}]}]
    first, _ = await post(sim, "/v1/messages", claude(CLAUDE_TOOLS, first_turn, system=system))
    answer = {**ANSWER, "cache_control": {"type": "ephemeral"}}
    second_turn = [{"role": "user", "content": [{"type": "text", "text": ASK}]},
                   {"role": "assistant", "content": [SERVER_USE, RESULT, USE]},
                   {"role": "user", "content": [answer]}]
    second, _ = await post(sim, "/v1/messages", claude(CLAUDE_TOOLS, second_turn, system=system))

    written = first.json()["usage"]["cache_creation_input_tokens"]
    assert written == count(text(BM25), LONG, f"user\n{ASK}")  # the whole first prompt
    usage = second.json()["usage"]
    assert usage["cache_read_input_tokens"] == written
    loaded_turn = count("\n".join(["tool_search_tool_result", text(RESULT["content"]),
                                   text({"tool_use_id": "srvtoolu_1"}), text(WEATHER)]),
                        f"assistant\n{text(SERVER_USE)}", bare(USE), f"user\n{text(ANSWER)}")
    assert usage["cache_creation_input_tokens"] == loaded_turn


@pytest.mark.anyio
async def test_responses_prefix_before_a_load_is_still_read_from_cache(
        sim: httpx.AsyncClient) -> None:
    tools = [HOSTED, FN_WEATHER]
    head = [{"role": "user", "content": LONG}]
    first, _ = await post(sim, "/v1/responses", responses(tools, head))
    second, _ = await post(sim, "/v1/responses", responses(
        tools, [*head, SEARCH_CALL, SEARCH_OUTPUT, FN_CALL, FN_OUTPUT]))

    before = first.json()["usage"]["input_tokens"]
    assert before == count('{"type":"tool_search"}', text(
        {k: v for k, v in FN_WEATHER.items() if k != "parameters"}), f"user\n{LONG}", model=GPT)
    # OpenAI caches whole 128-token steps from 1,024: every step of the first prompt hits.
    assert second.json()["usage"]["input_tokens_details"]["cached_tokens"] == (
        1024 + (before - 1024) // 128 * 128)
    assert second.json()["usage"]["input_tokens"] > before + count(text(FN_WEATHER), model=GPT)


# --- the model searches natively ----------------------------------------------------------

def anthropic_native_expectations(message: dict[str, Any]) -> None:
    use, result, call = message["content"]
    assert use["type"] == "server_tool_use" and use["name"] == "tool_search_tool_bm25"
    assert use["input"] == {"query": ASK} and use["id"].startswith("srvtoolu_")
    assert result["type"] == "tool_search_tool_result" and result["tool_use_id"] == use["id"]
    assert result["content"]["type"] == "tool_search_tool_search_result"
    found = [ref["tool_name"] for ref in result["content"]["tool_references"]]
    # The match first; Anthropic returns at least 3, so the next deferred tools fill up.
    assert found == ["get_weather", "send_email", "create_invoice"]
    assert all(ref["type"] == "tool_reference" for ref in result["content"]["tool_references"])
    assert (call["type"], call["name"]) == ("tool_use", "get_weather")
    assert call["input"] == {"city": "Paris"}
    assert message["stop_reason"] == "tool_use"
    # Input: the prompt, then the found definitions the model read before sampling again.
    prompt = count(text(BM25), f"user\n{ASK}")
    loaded = count(text(WEATHER), text(EMAIL), text(INVOICE))
    assert message["usage"]["input_tokens"] == prompt + loaded
    # Output: the search call, then the recorded 30.
    assert message["usage"]["output_tokens"] == count(json.dumps({"query": ASK})) + 30


@pytest.mark.anyio
async def test_anthropic_native_search_answers_in_one_call(sim: httpx.AsyncClient) -> None:
    body = claude(CLAUDE_TOOLS, [{"role": "user", "content": ASK}])
    response, bill = await post(sim, "/v1/messages", body, CALLED)

    assert response.status_code == 200, response.text
    anthropic_native_expectations(response.json())
    assert bill.outcome == "native_search"
    assert bill.counts.input_tokens == response.json()["usage"]["input_tokens"]


@pytest.mark.anyio
async def test_anthropic_native_search_streams_contiguous_blocks(sim: httpx.AsyncClient) -> None:
    body = claude(CLAUDE_TOOLS, [{"role": "user", "content": ASK}], stream=True)
    response, _ = await post(sim, "/v1/messages", body, CALLED)

    events = sse(response)
    starts = [(p["index"], p["content_block"]["type"]) for n, p in events
              if n == "content_block_start"]
    stops = [p["index"] for n, p in events if n == "content_block_stop"]
    assert starts == [(0, "server_tool_use"), (1, "tool_search_tool_result"), (2, "tool_use")]
    assert stops == [0, 1, 2]
    query = "".join(p["delta"]["partial_json"] for n, p in events
                    if n == "content_block_delta" and p["index"] == 0)
    assert json.loads(query) == {"query": ASK}
    result = next(p for n, p in events if n == "content_block_start" and p["index"] == 1)
    assert "get_weather" in [r["tool_name"]
                             for r in result["content_block"]["content"]["tool_references"]]
    assert not [p for n, p in events if n == "content_block_delta" and p["index"] == 1]


@pytest.mark.anyio
async def test_a_search_returns_at_most_five_references(sim: httpx.AsyncClient) -> None:
    many = [{"name": f"weather_{i}", "description": f"Weather in Paris, variant {i}.",
             "input_schema": CITY, "defer_loading": True} for i in range(7)]
    response, _ = await post(sim, "/v1/messages",
                             claude([BM25, WEATHER, *many], [{"role": "user", "content": ASK}]),
                             CALLED)

    references = response.json()["content"][1]["content"]["tool_references"]
    assert len(references) == 5


@pytest.mark.anyio
async def test_the_regex_variant_searches_with_a_pattern(sim: httpx.AsyncClient) -> None:
    body = claude([REGEX, WEATHER, EMAIL], [{"role": "user", "content": ASK}])
    response, bill = await post(sim, "/v1/messages", body, CALLED)

    use = response.json()["content"][0]
    assert (use["name"], use["input"]) == ("tool_search_tool_regex",
                                           {"query": "(?i)what|the|weather|paris"})
    assert bill.outcome == "native_search"


@pytest.mark.anyio
async def test_a_tool_the_search_cannot_find_is_a_tool_miss(sim: httpx.AsyncClient) -> None:
    recorded = {"content": [{"type": "tool_use", "id": "toolu_1", "name": "book_flight",
                             "input": {}}], "usage": {"output_tokens": 12}}
    response, bill = await post(sim, "/v1/messages",
                                claude(CLAUDE_TOOLS, [{"role": "user", "content": ASK}]), recorded)

    kinds = [block["type"] for block in response.json()["content"]]
    assert kinds == ["server_tool_use", "tool_search_tool_result", "tool_use"]
    assert response.json()["content"][2]["name"] == "book_flight"  # answered as recorded
    assert bill.outcome == "tool_miss"


@pytest.mark.anyio
async def test_a_loaded_tool_is_called_without_searching_again(sim: httpx.AsyncClient) -> None:
    again = [*SEARCHED, {"role": "assistant", "content": "It is sunny."},
             {"role": "user", "content": "And tomorrow?"}]
    response, bill = await post(sim, "/v1/messages", claude(CLAUDE_TOOLS, again), CALLED)

    assert [block["type"] for block in response.json()["content"]] == ["tool_use"]
    assert bill.outcome == "recorded"


@pytest.mark.anyio
async def test_tokenopts_own_search_tool_keeps_the_search_outcome(sim: httpx.AsyncClient) -> None:
    own = {"name": "tokenopt_search_tools", "input_schema": {"type": "object"}}
    response, bill = await post(sim, "/v1/messages",
                                claude([own], [{"role": "user", "content": ASK}]), CALLED)

    assert response.json()["content"][0]["name"] == "tokenopt_search_tools"
    assert bill.outcome == "search"


def responses_native_expectations(message: dict[str, Any], loaded: list[Any]) -> None:
    call, output, function = message["output"]
    assert call["type"] == "tool_search_call" and call["execution"] == "server"
    assert call["arguments"] == {"query": ASK} and call["status"] == "completed"
    assert output["type"] == "tool_search_output" and output["call_id"] == call["call_id"]
    assert output["execution"] == "server" and output["tools"] == loaded
    assert function["type"] == "function_call" and function["arguments"] == '{"city":"Paris"}'


@pytest.mark.anyio
async def test_responses_hosted_search_loads_and_calls_in_one_response(
        sim: httpx.AsyncClient) -> None:
    body = responses([HOSTED, FN_WEATHER], ASK)
    response, bill = await post(sim, "/v1/responses", body, CALLED_FN)

    assert response.status_code == 200, response.text
    responses_native_expectations(response.json(), [FN_WEATHER])
    stub = text({k: v for k, v in FN_WEATHER.items() if k != "parameters"})
    usage = response.json()["usage"]
    prompt = count('{"type":"tool_search"}', stub, f"user\n{ASK}", model=GPT)
    assert usage["input_tokens"] == prompt + count(text(FN_WEATHER), model=GPT)
    assert usage["output_tokens"] == count(json.dumps({"query": ASK}), model=GPT) + 20
    assert bill.outcome == "native_search"


@pytest.mark.anyio
async def test_a_namespaced_function_is_loaded_inside_its_namespace(sim: httpx.AsyncClient) -> None:
    recorded = {"output": [{"type": "function_call", "call_id": "call_1",
                            "name": "list_open_orders",
                            "arguments": "{}"}], "usage": {"output_tokens": 9}}
    response, bill = await post(sim, "/v1/responses",
                                responses([HOSTED, CRM], "Open orders of ACME?"), recorded)

    _, output, function = response.json()["output"]
    assert output["tools"] == [{"type": "namespace", "name": "crm", "description": "CRM lookups",
                                "tools": [FN_ORDERS]}]
    assert (function["name"], function["namespace"]) == ("list_open_orders", "crm")
    assert bill.outcome == "native_search"


@pytest.mark.anyio
async def test_responses_native_search_streams_numbered_items(sim: httpx.AsyncClient) -> None:
    body = responses([HOSTED, FN_WEATHER], ASK, stream=True)
    response, _ = await post(sim, "/v1/responses", body, CALLED_FN)

    events = sse(response)
    assert [p["sequence_number"] for _, p in events] == list(range(len(events)))
    added = [(p["output_index"], p["item"]["type"]) for n, p in events
             if n == "response.output_item.added"]
    done = [(p["output_index"], p["item"]["type"]) for n, p in events
            if n == "response.output_item.done"]
    assert added == done == [(0, "tool_search_call"), (1, "tool_search_output"),
                             (2, "function_call")]
    final = events[-1][1]["response"]
    assert events[-1][0] == "response.completed"
    responses_native_expectations(final, [FN_WEATHER])


@pytest.mark.anyio
async def test_client_executed_search_ends_the_turn_at_the_call(sim: httpx.AsyncClient) -> None:
    client_search = {"type": "tool_search", "execution": "client",
                     "description": "Search the CRM tools.",
                     "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}
    response, bill = await post(sim, "/v1/responses",
                                responses([client_search, FN_WEATHER], ASK), CALLED_FN)

    [call] = response.json()["output"]
    assert (call["type"], call["execution"], call["arguments"]) == (
        "tool_search_call", "client", {"query": ASK})
    assert response.json()["usage"]["output_tokens"] == count(json.dumps({"query": ASK}), model=GPT)
    assert bill.outcome == "client_search"


# --- the official SDKs parse it ----------------------------------------------------------

@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Starlette]]:
    app = create_sim_app(counter=COUNTER)
    with ServerThread(app) as url:
        yield url, app


def test_the_anthropic_sdk_parses_native_search(served: tuple[str, Starlette]) -> None:
    url, app = served
    app.state.script.add("sdk-claude", CALLED)
    kwargs: dict[str, Any] = {**claude(CLAUDE_TOOLS, [{"role": "user", "content": ASK}]),
                              "extra_headers": {RECORDED_HEADER: "sdk-claude"}}
    with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client:
        message = client.messages.create(**kwargs)
        with client.messages.stream(**kwargs) as stream:
            final = stream.get_final_message()

    for parsed in (message, final):
        assert [b.type for b in parsed.content] == [
            "server_tool_use", "tool_search_tool_result", "tool_use"]
        use, result, call = parsed.content
        assert use.input == {"query": ASK}  # type: ignore[union-attr]
        references = result.content.tool_references  # type: ignore[union-attr]
        assert "get_weather" in [r.tool_name for r in references]
        assert call.input == {"city": "Paris"}  # type: ignore[union-attr]
    assert final.usage.output_tokens == message.usage.output_tokens
    assert final.usage.input_tokens == message.usage.input_tokens


def test_the_openai_sdk_parses_native_search(served: tuple[str, Starlette]) -> None:
    url, app = served
    app.state.script.add("sdk-gpt", CALLED_FN)
    kwargs: dict[str, Any] = {**responses([HOSTED, FN_WEATHER], ASK),
                              "extra_headers": {RECORDED_HEADER: "sdk-gpt"}}
    with openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        response = client.responses.create(**kwargs)
        with client.responses.stream(**kwargs) as stream:
            for _ in stream:
                pass
            final = stream.get_final_response()

    for parsed in (response, final):
        assert [item.type for item in parsed.output] == [
            "tool_search_call", "tool_search_output", "function_call"]
        assert parsed.output[1].tools[0].name == "get_weather"  # type: ignore[union-attr]
        assert parsed.output[2].name == "get_weather"  # type: ignore[union-attr]
    assert final.usage is not None and response.usage is not None
    assert final.usage.input_tokens == response.usage.input_tokens


# --- what the providers refuse -----------------------------------------------------------

@pytest.mark.anyio
@pytest.mark.parametrize(("tools", "messages", "wording"), [
    ([BM25, {**WEATHER, "defer_loading": False}], SEARCHED,
     ("messages.1.content.1: tool_reference 'get_weather' does not name a tool defined with "
      "defer_loading: true.")),
    ([{"name": "find_tools", "input_schema": {"type": "object"}}, WEATHER],
     [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
         {"type": "tool_reference", "tool_name": "nowhere"}]}]}],
     ("messages.0.content.0: tool_reference 'nowhere' does not name a tool defined with "
      "defer_loading: true.")),
    ([WEATHER, EMAIL], [{"role": "user", "content": ASK}],
     ("tools: every tool has defer_loading set to true, and no tool search tool is provided "
      "to load them.")),
    ([{**BM25, "defer_loading": True}, WEATHER], [{"role": "user", "content": ASK}],
     "tools.0: the tool search tool itself cannot have defer_loading set to true."),
])
async def test_anthropic_refuses_what_it_cannot_load(
        sim: httpx.AsyncClient, tools: list[Any], messages: list[Any], wording: str) -> None:
    response, bill = await post(sim, "/v1/messages", claude(tools, messages))

    assert response.status_code == 400 and bill is None
    assert response.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": wording}}


@pytest.mark.anyio
async def test_responses_refuses_defer_loading_on_a_namespace(sim: httpx.AsyncClient) -> None:
    response, _ = await post(sim, "/v1/responses",
                             responses([HOSTED, {**CRM, "defer_loading": True}], ASK))

    assert response.status_code == 400
    assert response.json() == {"error": {"message": "Unknown parameter: 'tools[1].defer_loading'.",
                                         "type": "invalid_request_error",
                                         "param": "tools[1].defer_loading",
                                         "code": "unknown_parameter"}}
