"""`tokenopt`: serve, sim, demo, replay, report, inspect, erase-tenant. Sets up logging."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from tokenopt.exceptions import ConfigError, TokenOptError
from tokenopt.redaction import redact_query
from tokenopt.serving import bind, run, server_for, url_of
from tokenopt.settings import Settings

logger = logging.getLogger("tokenopt.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.log_level != "debug":  # one line per upstream call drowns what tokenopt says
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except TokenOptError as exc:
        print(f"tokenopt: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenopt", description=__doc__)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the sidecar proxy")
    serve.add_argument("--upstream", help="downstream base URL (default: the bundled simulator)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--config", help="TOML settings file (default: $TOKENOPT_CONFIG)")
    serve.add_argument("--record", metavar="FILE",
                       help="append the traffic to FILE in the replay format (no secrets)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="N processes sharing the port (state shared through [store] redis_url)")
    serve.set_defaults(run=_serve)

    sim = commands.add_parser("sim", help="run the provider simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--script", metavar="FILE",
                     help="answer each turn from a TOML or JSON script (tool calls, then text)")
    sim.add_argument("--journal", metavar="FILE",
                     help="append each request received and each bill to FILE as JSON lines")
    sim.set_defaults(run=_sim)

    demo = commands.add_parser(
        "demo", help="sidecar in front of the simulator, sample traffic, then a before/after report"
    )
    demo.add_argument("--config", help="TOML settings file")
    demo.set_defaults(run=_demo)

    inspect = commands.add_parser(
        "inspect", help="dry run: print the rewritten request (stdout) and what each plugin did"
    )
    inspect.add_argument("request", help="a request body, or one traffic-file line, as JSON")
    inspect.add_argument("--config", help="TOML settings file (default: $TOKENOPT_CONFIG)")
    inspect.add_argument("--path", help="route, e.g. /v1/messages (default: guessed from the body)")
    inspect.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                         help="a request header, e.g. 'x-tokenopt-task: classification'")
    inspect.set_defaults(run=_inspect)

    replay = commands.add_parser(
        "replay", help="what-if: recorded traffic as sent vs through tokenopt, on the simulator"
    )
    replay.add_argument("traffic", help="traffic file (JSON Lines, one request a line)")
    replay.add_argument("--config", help="TOML settings file (default: $TOKENOPT_CONFIG)")
    replay.add_argument("--json", action="store_true", help="one JSON object on stdout")
    replay.set_defaults(run=_replay)

    report = commands.add_parser("report", help="before/after savings from the ledger")
    report.add_argument("--config", help="TOML settings file (default: $TOKENOPT_CONFIG)")
    report.add_argument("--since", help="start: 2026-11-01, 2026-11-01T12:00, or an age like 24h, 7d")
    report.add_argument("--until", help="end, in the same forms")
    report.add_argument("--group-by", default="model", choices=["model", "route", "tenant", "plugin"])
    report.add_argument("--format", default="table", choices=["table", "md", "json", "html"])
    report.add_argument("--out", help="write to FILE instead of stdout")
    report.set_defaults(run=_report)

    erase = commands.add_parser(
        "erase-tenant", help="delete a tenant's stored state and ledger entries"
    )
    erase.add_argument("tenant", help="tenant id (t_..., as in `report --group-by tenant`), "
                                      "or '-' to read the tenant's API key from stdin")
    erase.add_argument("--config", help="TOML settings file (default: $TOKENOPT_CONFIG)")
    erase.add_argument("--json", action="store_true", help="one JSON object on stdout")
    erase.set_defaults(run=_erase_tenant)
    return parser


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"upstream": {"url": args.upstream}} if args.upstream else {}
    if args.record:
        overrides["record"] = {"path": args.record}
    settings = Settings.load(args.config, **overrides)
    if args.workers != 1:
        from tokenopt.workers import serve_workers

        return serve_workers(settings, args.host, args.port, args.workers,
                             _server_logs(args.log_level), args.log_level)
    run(_serve_async(settings, args.host, args.port, args.log_level))
    return 0


async def _serve_async(settings: Settings, host: str, port: int, log_level: str) -> None:
    from tokenopt.proxy import create_app

    servers = []
    if not settings.upstream.url:
        from tokenopt.sim import create_sim_app

        sim_sock = bind("127.0.0.1", 0)
        settings = settings.model_copy(
            update={"upstream": settings.upstream.model_copy(update={"url": url_of(sim_sock)})}
        )
        logger.info("no --upstream given: serving in front of the bundled simulator at %s",
                    settings.upstream.url)
        servers.append((server_for(create_sim_app()), sim_sock))
    sock = bind(host, port)
    servers.append((server_for(create_app(settings), **_server_logs(log_level)), sock))
    logger.info("tokenopt sidecar on %s -> %s", url_of(sock),
                redact_query(settings.upstream.url or ""))
    await asyncio.gather(*(server.serve(sockets=[s]) for server, s in servers))


def _server_logs(level: str) -> dict[str, Any]:
    # uvicorn's access log is an INFO line per request: shown at info and debug only.
    return {"log_level": level, "access_log": level in ("info", "debug")}


def _sim(args: argparse.Namespace) -> int:
    from tokenopt.sim import create_sim_app
    from tokenopt.sim.journal import JournalMiddleware
    from tokenopt.sim.scripted import TurnScript

    turns = TurnScript.load(args.script) if args.script else None
    sim_app = create_sim_app(turns=turns)
    app: Any = sim_app
    if args.journal:
        app = JournalMiddleware(sim_app, args.journal, bills=sim_app.state.bills)
    sock = bind(args.host, args.port)
    logger.info("provider simulator on %s%s", url_of(sock),
                f" answering from {args.script}" if args.script else "")
    asyncio.run(server_for(app, **_server_logs(args.log_level)).serve(sockets=[sock]))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tokenopt.demo import run_demo

    if args.log_level != "debug":  # the demo prints its own report; one JSON line per request is noise
        logging.getLogger("tokenopt.ledger").setLevel(logging.WARNING)

    return run_demo(Settings.load(args.config), out=sys.stdout)


def _inspect(args: argparse.Namespace) -> int:
    from tokenopt.inspect import inspect_request, load_request

    body, headers, path = load_request(args.request)
    for header in args.header:
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    return asyncio.run(inspect_request(
        body, settings=Settings.load(args.config), route=args.path or path, headers=headers,
        out=sys.stdout, err=sys.stderr,
    ))


def _replay(args: argparse.Namespace) -> int:
    from tokenopt.replay import compare, dump_json, load_lines, render_table

    report = asyncio.run(compare(load_lines(args.traffic), Settings.load(args.config)))
    (dump_json if args.json else render_table)(report, sys.stdout)
    return 0


def _report(args: argparse.Namespace) -> int:
    from tokenopt.report import parse_time

    settings = Settings.load(args.config)
    text = asyncio.run(_report_text(settings, parse_time(args.since), parse_time(args.until),
                                    args.group_by, args.format))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        sys.stdout.write(text)
    return 0


async def _report_text(settings: Settings, since: float | None, until: float | None,
                       group_by: str, fmt: str) -> str:
    from tokenopt.ledger import open_ledger
    from tokenopt.report import render, report_from
    from tokenopt.store import open_store

    store = open_store(settings.store.redis_url, key_prefix=settings.store.key_prefix)
    ledger = open_ledger(settings, store)
    try:
        return render(await report_from(ledger, since=since, until=until, group_by=group_by), fmt)
    finally:
        await ledger.aclose()
        await store.aclose()


def _erase_tenant(args: argparse.Namespace) -> int:
    from tokenopt.erase import erase_configured
    from tokenopt.identity import tenant_of

    tenant = args.tenant
    if tenant == "-":  # the key comes on stdin, so it is in no shell history or process list
        key = sys.stdin.readline().strip()
        if not key:
            raise ConfigError("erase-tenant -: no API key on stdin")
        tenant = tenant_of({"x-api-key": key})
    erased = asyncio.run(erase_configured(Settings.load(args.config), tenant))
    if args.json:
        sys.stdout.write(json.dumps(erased.as_json()) + "\n")
    else:
        sys.stdout.write("\n".join(erased.lines()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
