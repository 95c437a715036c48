"""Serving fixtures: a tiny linear ONNX model (no torch) bundled under the breast-cancer feature names,
in-process apps (TestClient) and real servers on loopback (the serving stack in a thread)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from slipway.data.reference import Reference
from slipway.serving.app import FastPredictFront, create_app
from slipway.serving.bundle import write_bundle
from slipway.serving.settings import ServeSettings
from tests.support.onnx_models import linear_onnx

N_FEATURES = 30


@pytest.fixture(scope="session")
def features(ref: Reference) -> list[str]:
    return list(ref.features)


@pytest.fixture(scope="session")
def weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N_FEATURES, 2)).astype(np.float32) / 10, np.array([0.1, -0.1], dtype=np.float32)


@pytest.fixture(scope="session")
def rows(ref: Reference) -> np.ndarray:
    """Real holdout rows (float32, schema order)."""
    return ref.holdout_xy()[0][:40]


@pytest.fixture(scope="session")
def bundle_dir(
    tmp_path_factory: pytest.TempPathFactory, features: list[str], weights: tuple[np.ndarray, np.ndarray]
) -> Path:
    """A serving bundle (read-only for tests: copy it before changing files)."""
    root = tmp_path_factory.mktemp("bundle")
    onnx_path = linear_onnx(root / "src" / "model.onnx", weights=weights[0], bias=weights[1])
    return write_bundle(
        root / "bundle",
        onnx_path=onnx_path,
        model_name="tiny",
        model_version="3",
        features=features,
        classes=[0, 1],
    )


def offline_logits(x: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """What the linear model computes, in numpy."""
    return (x.astype(np.float32) @ weights[0] + weights[1]).astype(np.float32)


ClientFactory = Callable[..., Any]


@pytest.fixture(params=["fastapi", "fast-predict-front"])
def client_for(bundle_dir: Path, request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    """client_for(**settings) -> a started TestClient (lifespan run) over the bundle; closed after the test.

    Every app test runs twice: on the FastAPI app, and behind the FastPredictFront `slipway serve` uses.
    """
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = ServeSettings(model=overrides.pop("model", bundle_dir), **overrides)
        app: Any = create_app(settings)
        if request.param == "fast-predict-front":
            app = FastPredictFront(app)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@contextmanager
def started(settings: ServeSettings) -> Iterator[TestClient]:
    """A TestClient whose lifespan runs for the block."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@dataclass
class LiveServer:
    """A real server of `slipway serve`'s stack (uvloop, httptools, Slipway's protocol) on loopback."""

    port: int
    server: Any

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def connect(self, *, timeout_s: float = 10.0) -> socket.socket:
        """A raw TCP connection to it; reads give up after `timeout_s` (a hung server fails the test)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


@contextmanager
def live_server(settings: ServeSettings) -> Iterator[LiveServer]:
    """`settings` served for the block by the serving stack in a thread, on a free loopback port."""
    import uvicorn

    from slipway.serving.servability import free_port
    from slipway.serving.server import uvicorn_config

    settings = settings.model_copy(update={"host": "127.0.0.1", "port": free_port()})
    server = uvicorn.Server(uvicorn_config(FastPredictFront(create_app(settings)), settings))
    thread = threading.Thread(target=server.run, name="slipway-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server thread died at start"
        assert time.monotonic() < deadline, "the server did not start in 30 s"
        time.sleep(0.01)
    try:
        yield LiveServer(port=settings.port, server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it never does)."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


class Responses:
    """Reads HTTP/1.1 responses (content-length bodies) off one connection, in order, keeping what it over-reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"connection closed after {self.buf!r}"
        self.buf += data

    def next(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, lower-cased headers, body."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The one response expected on `sock` next (use Responses to read several)."""
    return Responses(sock).next()


def post_bytes(body: bytes, *, path: str = "/predict", extra: str = "") -> bytes:
    """The bytes of a keep-alive JSON POST."""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if sample == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0
