"""Helpers: run the thinking plugin over one body in a dialect, as the middleware would."""

from __future__ import annotations

import json
from typing import Any, cast

from tokenopt.dialects import dialect_for
from tokenopt.pipeline import PluginContext
from tokenopt.plugins.thinking import ThinkingPlugin, ThinkingSettings
from tokenopt.tokens import TokenCounter

CHAT, RESPONSES, MESSAGES = "/v1/chat/completions", "/v1/responses", "/v1/messages"


def plugin(rules: list[dict[str, Any]], **settings: Any) -> ThinkingPlugin:
    return ThinkingPlugin(ThinkingSettings.model_validate({"rules": rules, **settings}))


def context() -> PluginContext:
    return PluginContext(store=cast(Any, None), counter=TokenCounter())


async def run(
    path: str, body: dict[str, Any], rule: dict[str, Any], *, headers: dict[str, str] | None = None,
    **settings: Any,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The body the upstream would get (None: the client's bytes) and the plugin's notes."""
    dialect = dialect_for("POST", path)
    assert dialect is not None
    view = dialect.parse(json.loads(json.dumps(body)), tenant="t_1", headers=headers or {})
    ctx = context()
    out = await plugin([rule], **settings).on_request(view, ctx)
    return dialect.render(out), ctx.notes
