"""The load generator of the sidecar benchmark, run as its own process.

The client must not share a process with what it measures, nor cost more than it
measures: this one speaks just enough HTTP/1.1 (keep-alive, Content-Length or chunked
answers) over asyncio streams on uvloop, a request being a few socket calls. It reads
one JSON job a line on stdin and answers one JSON line on stdout, so the benchmark
keeps a single client process for the whole run:

    {"host": ..., "port": ..., "path": ..., "body": FILE, "headers": {...},
     "concurrency": C, "duration": S, "warmup": S}
    -> {"latencies_ms": [...], "requests": N, "wall_s": W, "cpu_s": T, "errors": E,
        "warmup_requests": M}

`cpu_s / wall_s` is the client's own CPU share: well under 1.0 means the client was
not the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any


class Connection:
    """One keep-alive HTTP/1.1 connection sending the same request again and again."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def send(self) -> int:
        """One request, its whole answer read; returns the status."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = _framing(head)
        if chunked:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers are sent here
                    break
                await self.reader.readexactly(size + 2)
        elif length is not None:
            await self.reader.readexactly(length)
        else:
            await self.reader.read()
            close = True
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _framing(head: bytes) -> tuple[int | None, bool, bool]:
    length: int | None = None
    chunked = close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    return length, chunked, close


def build_request(job: dict[str, Any]) -> bytes:
    body = Path(job["body"]).read_bytes()
    headers = {"host": f"{job['host']}:{job['port']}", "content-type": "application/json",
               **job.get("headers", {}), "content-length": str(len(body))}
    head = f"POST {job['path']} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


async def run(job: dict[str, Any]) -> dict[str, Any]:
    """`concurrency` connections, each sending back to back, for `duration` seconds."""
    request = build_request(job)
    conns = [Connection(job["host"], job["port"], request) for _ in range(job["concurrency"])]
    await asyncio.gather(*(c.open() for c in conns))
    latencies: list[float] = []
    errors = warmup_requests = 0
    measuring = False

    async def loop(conn: Connection, until: float) -> None:
        nonlocal errors, warmup_requests
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                status = await conn.send()
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                status = 0
            if not measuring:
                warmup_requests += 1
                continue
            if status == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    warmup = job.get("warmup", 0.0)
    if warmup:
        end = time.perf_counter() + warmup
        await asyncio.gather(*(loop(c, end) for c in conns))
    measuring = True
    cpu, wall = time.process_time(), time.perf_counter()
    end = wall + job["duration"]
    await asyncio.gather(*(loop(c, end) for c in conns))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for conn in conns:
        conn.close()
    return {"latencies_ms": [round(x, 4) for x in latencies], "requests": len(latencies),
            "wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "errors": errors,
            "warmup_requests": warmup_requests}


async def serve_jobs() -> None:
    for line in sys.stdin:
        if line.strip():
            result = await run(json.loads(line))
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()


def main() -> None:
    try:
        import uvloop
    except ImportError:  # the stdlib loop still works, at a higher client cost
        asyncio.run(serve_jobs())
    else:
        uvloop.run(serve_jobs())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
