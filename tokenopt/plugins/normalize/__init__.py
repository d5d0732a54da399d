"""Stable cacheable prefixes: canonical tools, relocated volatile spans, breakpoints, break detector."""

from tokenopt.plugins.normalize.plugin import NormalizePlugin
from tokenopt.plugins.normalize.settings import NormalizeSettings

__all__ = ["NormalizePlugin", "NormalizeSettings"]
