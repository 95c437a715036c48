"""Debian's `redis-server` for the feature-store tests: on a free loopback port with a temporary folder, no
persistence, stopped with its process group. Absent binary: the test is skipped and says how to install it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from slipway.ports import free_port
from tests.support.servers import stop

START_TIMEOUT_S = 20.0


def redis_binary() -> str:
    """The redis-server path; pytest.skip naming the install command when it is absent."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install redis-server; .ci/run installs it)")
    return binary


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(state: Path) -> Iterator[str]:
    """Blocking start (~0.1 s); yields its URL (redis://127.0.0.1:PORT/0); stopped (SIGTERM) on exit."""
    binary = redis_binary()
    port = free_port()
    state.mkdir(parents=True, exist_ok=True)
    log = state / "redis.log"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--dir", str(state), "--daemonize", "no"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _pong(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"redis-server on port {port} did not answer PING:\n{log.read_text()[-2000:]}"
                )
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc, grace_s=10)
