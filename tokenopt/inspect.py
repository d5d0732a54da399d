"""`tokenopt inspect`: a dry run of the pipeline over one request body, no network.

Prints the body tokenopt would forward on stdout, and what each plugin did on
stderr, so a policy can be checked before it meets traffic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from tokenopt.dialects import dialect_for
from tokenopt.dialects.base import JSON, Dialect
from tokenopt.engine import Engine
from tokenopt.exceptions import ConfigError, PolicyRejected
from tokenopt.identity import tenant_of
from tokenopt.settings import Settings


def guess_route(body: Mapping[str, Any]) -> str:
    """The route a body most likely belongs to, when `--path` is not given."""
    if "input" in body or "instructions" in body:
        return "/v1/responses"
    model = str(body.get("model", ""))
    if "claude" in model or "thinking" in body or isinstance(body.get("system"), (str, list)):
        return "/v1/messages"
    return "/v1/chat/completions"


def load_request(path: str) -> tuple[JSON, dict[str, str], str | None]:
    """A request body, or one traffic-file line (`{"path", "headers", "body"}`)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read request '{path}': {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"request '{path}' is not a JSON object")
    if isinstance(data.get("body"), dict) and isinstance(data.get("path"), str):
        headers = {str(k).lower(): str(v) for k, v in (data.get("headers") or {}).items()}
        return data["body"], headers, data["path"]
    return data, {}, None


async def inspect_request(
    body: JSON, *, settings: Settings, route: str | None = None,
    headers: Mapping[str, str] | None = None, out: TextIO, err: TextIO,
) -> int:
    """Run the pipeline over `body`; 0 when it would be forwarded, 1 when a policy refuses it."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    route = route or guess_route(body)
    dialect = dialect_for("POST", route)
    if dialect is None:
        raise ConfigError(f"no dialect serves route '{route}'")
    engine = Engine.from_settings(settings)
    try:
        return await _run(engine, dialect, body, headers, out, err)
    finally:
        await engine.aclose()


async def _run(
    engine: Engine, dialect: Dialect, body: JSON, headers: dict[str, str], out: TextIO,
    err: TextIO,
) -> int:
    tenant = tenant_of(headers)
    view = dialect.parse(body, tenant=tenant, headers=headers)
    print(f"route {dialect.path} ({dialect.name}), model {view.model}, task {view.task}, "
          f"plugins: {', '.join(p.name for p in engine.pipeline.plugins) or 'none'}", file=err)
    try:
        result = await engine.pipeline.run(view, engine.context_for(tenant))
    except PolicyRejected as exc:
        print(f"rejected ({exc.status}, rule {exc.rule}): {exc}", file=err)
        print(json.dumps(dialect.error_body(exc.status, str(exc)), indent=2), file=out)
        return 1
    for name, notes in result.notes.items():
        print(f"{name}: {json.dumps(notes, ensure_ascii=False)}", file=err)
    if result.failed is not None:
        print(f"{result.failed}: failed ({result.error!r}); forwarded unchanged", file=err)
        rendered = None
    else:
        rendered = dialect.render(result.view)
    print("unchanged: the client's bytes are forwarded" if rendered is None else "rewritten",
          file=err)
    print(json.dumps(body if rendered is None else rendered, indent=2, ensure_ascii=False),
          file=out)
    return 0
