"""tokenopt: prompt-cache and token-optimisation middleware for LLM API traffic.

Two forms over one engine: `TokenOptMiddleware` mounted in an ASGI app, and the
sidecar proxy built by `create_app` (what `tokenopt serve` runs).
"""

from tokenopt.asgi import TokenOptMiddleware
from tokenopt.dialects.base import RequestView, Usage
from tokenopt.engine import Engine
from tokenopt.exceptions import ConfigError, PluginError, PolicyRejected, TokenOptError
from tokenopt.pipeline import Plugin, PluginContext, ResponseView
from tokenopt.proxy import create_app
from tokenopt.records import ExchangeRecord
from tokenopt.settings import Settings

__all__ = [
    "ConfigError",
    "Engine",
    "ExchangeRecord",
    "Plugin",
    "PluginContext",
    "PluginError",
    "PolicyRejected",
    "RequestView",
    "ResponseView",
    "Settings",
    "TokenOptError",
    "TokenOptMiddleware",
    "Usage",
    "create_app",
]
