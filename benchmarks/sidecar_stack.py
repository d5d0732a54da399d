"""The bare sidecar on other forwarding stacks, for `benchmarks.sidecar --stacks`.

Each variant is the sidecar `create_app` builds, served by another server or event
loop, or forwarding over another upstream transport, so one run can compare them.
A variant is `SERVER/LOOP/TRANSPORT`:

    SERVER     uvicorn (httptools parser) | granian (Rust HTTP server)
    LOOP       asyncio | uvloop
    TRANSPORT  httpx (httpx's own, httpcore) | aiohttp (tokenopt.upstream, what ships)
               | httpx-aiohttp (the `httpx-aiohttp` package's transport)

    python -m benchmarks.sidecar_stack VARIANT --upstream URL --port P --config FILE
"""

from __future__ import annotations

import argparse
import os

import httpx
import uvicorn

from tokenopt.proxy import create_app, new_client
from tokenopt.serving import bind
from tokenopt.settings import Settings
from tokenopt.types import ASGIApp

VARIANTS = ("uvicorn/asyncio/httpx", "uvicorn/asyncio/aiohttp", "uvicorn/uvloop/httpx",
            "uvicorn/uvloop/aiohttp", "uvicorn/asyncio/httpx-aiohttp", "granian/uvloop/httpx",
            "granian/uvloop/aiohttp")


def client_for(transport: str, settings: Settings) -> httpx.AsyncClient:
    upstream = settings.upstream
    timeout = httpx.Timeout(upstream.read_timeout, connect=upstream.connect_timeout)
    limits = httpx.Limits(max_connections=upstream.max_connections,
                          max_keepalive_connections=upstream.max_connections)
    if transport == "aiohttp":
        return new_client(upstream)
    if transport == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False),
                                 timeout=timeout, follow_redirects=False, trust_env=False)
    return httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False,
                             trust_env=False)


def app_for(variant: str, settings: Settings) -> ASGIApp:
    return create_app(settings, client=client_for(variant.split("/")[2], settings))


def granian_app() -> ASGIApp:
    """Granian's factory target: the variant and settings come through the environment."""
    settings = Settings.load(os.environ["BENCH_CONFIG"], upstream={"url": os.environ["BENCH_UPSTREAM"]})
    return app_for(os.environ["BENCH_VARIANT"], settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    server, loop, _ = args.variant.split("/")
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        os.environ.update(BENCH_CONFIG=args.config, BENCH_UPSTREAM=args.upstream,
                          BENCH_VARIANT=args.variant)
        Granian("benchmarks.sidecar_stack:granian_app", factory=True, interface=Interfaces.ASGI,
                address="127.0.0.1", port=args.port, workers=1, loop=loop,
                log_enabled=False).serve()
        return
    settings = Settings.load(args.config, upstream={"url": args.upstream})
    config = uvicorn.Config(app_for(args.variant, settings), log_level="warning", access_log=False,
                            lifespan="on", loop=loop,
                            http="httptools")
    uvicorn.Server(config).run(sockets=[bind("127.0.0.1", args.port)])


if __name__ == "__main__":
    main()
