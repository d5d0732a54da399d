"""Servers run as child processes by benchmarks and tests: a free port, readiness, a clean stop.

A child process has no readiness signal, so readiness is polled on an HTTP route.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tokenopt.serving import bind


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with bind() as sock:
        port: int = sock.getsockname()[1]
    return port


def below_500(status: int) -> bool:
    return status < 500


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, *, timeout: float = 180.0,
               ready: Callable[[int], bool] = below_500, interval: float = 0.1) -> None:
    """Poll `url` until its status is `ready`; fail with the log's tail if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if ready(httpx.get(url, timeout=2).status_code):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(interval)  # polling: the child has no readiness signal


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Terminate, and kill what does not exit within `timeout`."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running(argv: list[str], ready_url: str, log: Path, *, env: dict[str, str] | None = None,
            timeout: float = 180.0, ready: Callable[[int], bool] = below_500,
            ) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` (output to `log`), yield it once `ready_url` answers, stop it on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_ready(ready_url, proc, log, timeout=timeout, ready=ready)
        yield proc
    finally:
        stop(proc)


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"
