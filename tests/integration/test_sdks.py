"""The official SDKs, pointed at tokenopt by base_url, on every route, in both forms.

The sidecar form is `create_app` in front of the simulator; the mounted form is
an application's own LLM-forwarding app wrapped in `TokenOptMiddleware`. Either
way tokenopt must be invisible to the SDK and must read the usage.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.integration.support import QueueSink, Sim, running_sidecar, settings_for
from tokenopt.asgi import TokenOptMiddleware
from tokenopt.dialects.base import Usage
from tokenopt.engine import Engine
from tokenopt.proxy import create_app
from tokenopt.serving import ServerThread

API_KEY = "sk-e2e-secret"
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class Front:
    """Where the SDKs send requests, and the records tokenopt wrote for them."""

    url: str
    sink: QueueSink


def llm_app(upstream: str) -> Starlette:
    """An application's own LLM gateway: forwards /v1/* to its provider, serves other routes."""
    client = httpx.AsyncClient(base_url=upstream, timeout=30)

    async def forward(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        upstream_request = client.build_request(
            request.method, request.url.path, headers=headers, content=await request.body()
        )
        answer = await client.send(upstream_request, stream=True)
        return StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items()
                     if k not in ("content-length", "transfer-encoding")},
            background=BackgroundTask(answer.aclose),
        )

    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello from the app")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with client:
            yield

    return Starlette(routes=[
        Route("/v1/{path:path}", forward, methods=["POST"]),
        Route("/hello", hello),
    ], lifespan=lifespan)


@contextlib.contextmanager
def mounted(upstream: str) -> Iterator[Front]:
    sink = QueueSink()
    engine = Engine(settings_for(upstream), sinks=[sink])
    with ServerThread(TokenOptMiddleware(llm_app(upstream), engine=engine)) as url:
        yield Front(url, sink)


@contextlib.contextmanager
def sidecar(upstream: str) -> Iterator[Front]:
    with running_sidecar(upstream) as server:
        yield Front(server.url, server.sink)


@contextlib.contextmanager
def sidecar_with_default_pipeline(upstream: str) -> Iterator[Front]:
    """The sidecar as `tokenopt serve` runs it: discovered plugins, default settings."""
    sink = QueueSink()
    settings = settings_for(upstream)
    engine = Engine.from_settings(settings, sinks=[sink])
    assert [p.name for p in engine.pipeline.plugins] == ["normalize", "tools", "thinking"]
    with ServerThread(create_app(settings, engine=engine)) as url:
        yield Front(url, sink)


FORMS = {"sidecar": sidecar, "mounted": mounted, "default-pipeline": sidecar_with_default_pipeline}


@pytest.fixture(params=sorted(FORMS))
def front(request: pytest.FixtureRequest, sim: Sim) -> Iterator[Front]:
    with FORMS[request.param](sim.url) as server:
        yield server


@pytest.fixture
def openai_client(front: Front) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=front.url + "/v1", api_key=API_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(front: Front) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=front.url, api_key=API_KEY, max_retries=0) as client:
        yield client


def assert_read(usage: Usage | None, *, input_tokens: int, output_tokens: int) -> None:
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (input_tokens, output_tokens)
    assert input_tokens > 0 and output_tokens > 0


def test_chat_completions(front: Front, openai_client: openai.OpenAI) -> None:
    client = openai_client

    completion = client.chat.completions.create(model="gpt-4.1", messages=PROMPT)
    record = front.sink.next()
    chunks = list(client.chat.completions.create(model="gpt-4.1", messages=PROMPT, stream=True))
    streamed = front.sink.next()

    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert_read(record.usage, input_tokens=completion.usage.prompt_tokens,
                output_tokens=completion.usage.completion_tokens)
    # The client did not ask for stream usage: it sees none, tokenopt still reads it.
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == completion.choices[0].message.content
    assert streamed.stream and streamed.complete
    assert_read(streamed.usage, input_tokens=completion.usage.prompt_tokens,
                output_tokens=completion.usage.completion_tokens)


def test_responses(front: Front, openai_client: openai.OpenAI) -> None:
    client = openai_client

    response = client.responses.create(model="gpt-4.1", input="What is the capital of France?")
    record = front.sink.next()
    with client.responses.stream(model="gpt-4.1", input="What is the capital of France?") as s:
        final = s.get_final_response()
    streamed = front.sink.next()

    assert response.output_text and final.output_text == response.output_text
    assert response.usage is not None and final.usage is not None
    assert_read(record.usage, input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens)
    assert streamed.stream and streamed.complete
    assert_read(streamed.usage, input_tokens=final.usage.input_tokens,
                output_tokens=final.usage.output_tokens)


def test_messages(front: Front, anthropic_client: anthropic.Anthropic) -> None:
    client = anthropic_client

    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=PROMPT)
    record = front.sink.next()
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=PROMPT) as s:
        final = s.get_final_message()
    streamed = front.sink.next()

    assert message.content[0].type == "text" and message.content[0].text
    assert_read(record.usage, input_tokens=message.usage.input_tokens,
                output_tokens=message.usage.output_tokens)
    assert [b.text for b in final.content] == [b.text for b in message.content]  # type: ignore[union-attr]
    assert streamed.stream and streamed.complete
    assert_read(streamed.usage, input_tokens=final.usage.input_tokens,
                output_tokens=final.usage.output_tokens)


def test_sdk_errors_surface_as_the_providers_errors(
    anthropic_client: anthropic.Anthropic, openai_client: openai.OpenAI
) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        anthropic_client.messages.create(model="claude-sonnet-4-6", max_tokens=-1,
                                                messages=PROMPT)
    assert bad.value.status_code == 400

    with pytest.raises(openai.RateLimitError):
        openai_client.chat.completions.create(
            model="gpt-4.1", messages=PROMPT, extra_headers={"x-sim-status": "429"}
        )


def test_the_mounted_app_keeps_its_other_routes(sim: Sim) -> None:
    with mounted(sim.url) as front:
        response = httpx.get(front.url + "/hello")
    assert response.text == "hello from the app"
    assert front.sink.records.empty()


def test_the_default_pipeline_turns_an_agent_loop_into_cache_reads(sim: Sim) -> None:
    from benchmarks.workload import as_route_tools, load_jsonl, tool_set

    tools = as_route_tools("/v1/messages", tool_set(load_jsonl("tools.jsonl"),
                                                    {"github-mcp-server"}, 30))
    turn1 = [{"role": "user", "content": "List the open pull requests of tokenopt/tokenopt"}]

    def two_turns(front: Front) -> tuple[anthropic.types.Usage, anthropic.types.Usage]:
        with anthropic.Anthropic(base_url=front.url, api_key=API_KEY, max_retries=0) as client:
            first = client.messages.create(model="claude-sonnet-4-6", max_tokens=256,
                                           tools=tools, messages=turn1)  # type: ignore[arg-type]
            turn2 = [*turn1, {"role": "assistant", "content": first.content},
                     {"role": "user", "content": "Now only the ones with failing checks"}]
            second = client.messages.create(model="claude-sonnet-4-6", max_tokens=256,
                                            tools=tools, messages=turn2)  # type: ignore[arg-type]
        return first.usage, second.usage

    with sidecar(sim.url) as bare:
        plain = two_turns(bare)
    with sidecar_with_default_pipeline(sim.url) as optimised:
        first, second = two_turns(optimised)

    # As sent, the client set no breakpoint: Anthropic caches nothing.
    assert [u.cache_read_input_tokens or 0 for u in plain] == [0, 0]
    # tokenopt marked the tools, system and conversation: the second turn reads them back.
    assert (first.cache_creation_input_tokens or 0) > 2048  # above sonnet-4-6's minimum
    assert (second.cache_read_input_tokens or 0) >= (first.cache_creation_input_tokens or 0)
