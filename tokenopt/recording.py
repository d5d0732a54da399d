"""`tokenopt serve --record FILE`: the sidecar's traffic, written in the replay format.

Lines are appended off the request path, one JSON object each, so a user can
replay a day of their own traffic. Only tokenopt's own headers are kept: API
keys, cookies and every other header stay out of the file. Bodies are written
as the client sent them (they are what replay needs), so the file holds
prompts: treat it like the prompts themselves.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import anyio.to_thread

from tokenopt.exceptions import ConfigError

KEPT_HEADERS = ("x-tokenopt-conversation", "x-tokenopt-task")


class TrafficRecorder:
    """Appends traffic lines to a file; safe to call from concurrent requests."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot record traffic to '{path}': {exc.strerror}") from exc
        self._lock = threading.Lock()
        self.lines = 0

    async def write(
        self, *, ts: float, path: str, headers: Mapping[str, str], body: Any,
        response: Any | None = None,
    ) -> None:
        line: dict[str, Any] = {
            "ts": round(ts, 3),
            "path": path,
            "headers": {name: headers[name] for name in KEPT_HEADERS if name in headers},
            "body": body,
        }
        if response is not None:
            line["response"] = response
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
        await anyio.to_thread.run_sync(self._append, text)

    def _append(self, text: str) -> None:
        with self._lock:
            if self._file is None:
                return  # closed: the server is shutting down
            self._file.write(text)
            self._file.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
