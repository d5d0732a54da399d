"""Tool definitions: dedupe, lossless slimming, lazy loading by search."""

from tokenopt.plugins.tools.plugin import ToolsPlugin
from tokenopt.plugins.tools.settings import ToolsSettings

__all__ = ["ToolsPlugin", "ToolsSettings"]
