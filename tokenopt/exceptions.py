"""Exceptions raised by tokenopt.

    TokenOptError
    ├── ConfigError          bad settings, unknown plugin or key
    ├── PluginError          a plugin that cannot be loaded or validated
    ├── DialectError         a request body a dialect cannot read
    ├── PolicyRejected       a request refused on purpose (budget in reject mode)
    └── UpstreamError        the downstream could not be reached
        ├── UpstreamTimeout
        └── UpstreamUnavailable
"""

from __future__ import annotations


class TokenOptError(Exception):
    """Base class of every tokenopt error."""


class ConfigError(TokenOptError):
    """Settings that cannot be used: a bad value, an unknown plugin or key."""


class PluginError(TokenOptError):
    """A plugin that cannot be loaded or does not fit the plugin interface."""


class DialectError(TokenOptError):
    """A request body that a dialect cannot read."""


class PolicyRejected(TokenOptError):
    """A request refused on purpose by a policy; carries the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400, rule: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule


class UpstreamError(TokenOptError):
    """The downstream could not be reached or failed before answering."""


class UpstreamTimeout(UpstreamError):
    """The downstream did not answer in time."""


class UpstreamUnavailable(UpstreamError):
    """The downstream refused or reset the connection."""
