"""Slow and idle clients against a real server on loopback: what an SRE would probe.

Each probe ends with the server closing the connection (a read that never ends fails on the socket
timeout): a half-sent request, a body never sent, an unterminated chunked upload, slowloris
headers, an idle socket, and connections past the cap. Timeouts are set small here; the assertions
are about what the client receives, never about how fast.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from slipway.serving.protocol import EVICT_IDLE_S, _quiet_accept_errors
from slipway.serving.settings import ServeSettings
from tests.unit.serving.conftest import (
    LiveServer,
    Responses,
    live_server,
    metric,
    post_bytes,
    read_response,
    read_until_closed,
)

ROW = b'{"instances": [[' + b", ".join([b"1.0"] * 30) + b"]]}"


@pytest.fixture()
def fast_timeouts(bundle_dir: Path) -> Iterator[LiveServer]:
    """Short header and body timeouts; a long idle timeout, so a stalled test machine cannot close first."""
    settings = ServeSettings(model=bundle_dir, header_timeout_s=0.3, body_timeout_s=0.3, keep_alive_s=30)
    with live_server(settings) as server:
        yield server


def _metrics(server: LiveServer) -> str:
    return httpx.get(f"{server.url}/metrics", timeout=10).text


def _status_line(data: bytes) -> bytes:
    return data.split(b"\r\n", 1)[0]


def test_headers_that_never_end_get_408_and_the_connection_closed(fast_timeouts: LiveServer) -> None:
    with fast_timeouts.connect() as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n")
        assert _status_line(read_until_closed(sock)) == b"HTTP/1.1 408 Request Timeout"
    assert metric(_metrics(fast_timeouts), "slipway_read_timeouts_total", phase="headers") == 1


def test_slowloris_headers_are_cut_off_although_bytes_keep_coming(fast_timeouts: LiveServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nhost: test\r\n" + b"x-pad: " + b"a" * 200 + b"\r\n\r\n"
    with fast_timeouts.connect() as sock:
        sent = 0
        for byte in request[:-4]:  # never the blank line: a slowloris client, one byte every 20 ms
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            time.sleep(0.02)
        answer = read_until_closed(sock)
    assert sent < len(request) - 4  # the server hung up before the client was done
    assert _status_line(answer) == b"HTTP/1.1 408 Request Timeout"


def test_a_declared_body_never_sent_gets_408_and_is_counted(fast_timeouts: LiveServer) -> None:
    with fast_timeouts.connect() as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: 500\r\n\r\n" + ROW[:20]  # 20 of the 500 bytes, then nothing
        )
        assert _status_line(read_until_closed(sock)) == b"HTTP/1.1 408 Request Timeout"
    text = _metrics(fast_timeouts)
    assert metric(text, "slipway_read_timeouts_total", phase="body") == 1
    assert metric(text, "slipway_requests_total", status="408", model_version="3") == 1


def test_an_unterminated_chunked_upload_gets_408(fast_timeouts: LiveServer) -> None:
    head = (
        b"POST /predict HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    with fast_timeouts.connect() as sock:
        sock.sendall(head + b"10\r\n" + ROW[:16] + b"\r\n")  # one chunk, then nothing: no terminating 0
        assert _status_line(read_until_closed(sock)) == b"HTTP/1.1 408 Request Timeout"


def test_idle_connections_are_closed_new_or_kept_alive(bundle_dir: Path) -> None:
    with live_server(ServeSettings(model=bundle_dir, keep_alive_s=1.0)) as server:
        with server.connect() as silent:
            assert read_until_closed(silent) == b""  # connected, never sent a byte
        with server.connect() as kept:
            kept.sendall(post_bytes(ROW))
            assert read_response(kept)[0] == 200
            assert read_until_closed(kept) == b""  # the keep-alive connection, idle after its answer


def test_pipelined_and_complete_requests_are_not_affected(fast_timeouts: LiveServer) -> None:
    with fast_timeouts.connect() as sock:
        sock.sendall(post_bytes(ROW) + b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n" + post_bytes(ROW))
        responses = Responses(sock)
        assert [responses.next()[0] for _ in range(3)] == [200, 200, 200]


def test_past_the_connection_cap_a_new_connection_gets_503_with_retry_after(bundle_dir: Path) -> None:
    settings = ServeSettings(model=bundle_dir, max_connections=3, header_timeout_s=30, retry_after_s=2)
    with live_server(settings) as server:
        busy = [server.connect() for _ in range(3)]
        for sock in busy:  # each one mid-request: not idle, so none can be closed to make room
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        with server.connect() as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
            status, headers, _ = read_response(extra)
            assert (status, headers["retry-after"], headers["x-slipway-shed"]) == (503, "2", "connections")
            assert read_until_closed(extra) == b""
        for sock in busy:  # the held connections still get their answers
            sock.sendall(b"host: test\r\n\r\n")
            assert read_response(sock)[0] == 200
            sock.close()
        assert metric(_metrics(server), "slipway_connections_refused_total") == 1


def test_at_the_cap_the_longest_idle_connection_makes_room_for_a_probe(bundle_dir: Path) -> None:
    settings = ServeSettings(model=bundle_dir, max_connections=2, keep_alive_s=30)
    with live_server(settings) as server:
        idle = [server.connect(timeout_s=2) for _ in range(2)]
        time.sleep(EVICT_IDLE_S + 0.2)  # idle long enough to be closed for a newcomer
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        evicted = 0
        for sock in idle:
            with contextlib.suppress(TimeoutError):  # TimeoutError: still open (keep-alive is 30 s)
                evicted += sock.recv(1) == b""
            sock.close()
        assert evicted == 1


def test_a_storm_of_failing_accepts_logs_one_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from slipway.serving import protocol

    monkeypatch.setattr(protocol, "_accept_errors", protocol._Throttled())
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level("ERROR", logger="slipway.serving"):
            for _ in range(5000):
                context = {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "EMFILE"),
                }
                _quiet_accept_errors(loop, context)
    finally:
        loop.close()
    assert len(caplog.records) == 1
