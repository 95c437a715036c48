"""The HTTP/1.1 protocol of every Slipway server: uvicorn's httptools protocol plus the limits it lacks.

* idle: a connection with no request in progress (new, or kept alive) is closed after `keep_alive_s`;
* headers: from a request's first byte its headers must be complete within `header_timeout_s`, else
  408 and the connection is closed (slowloris);
* body: from the end of the headers the body must be complete within `body_timeout_s`, else 408 (if
  nothing was answered yet) and closed (a declared body never sent, an unterminated chunked upload);
* connections: at `max_connections` open connections the one idle longest (at least `EVICT_IDLE_S`) is
  closed to make room, else the new one gets a 503 with Retry-After and is closed (no hang); past
  `MAX_REFUSING` such refusals at once, new connections are closed unanswered. The cap sits below the
  open-file limit (see `slipway.serving.server`), so a connection flood cannot exhaust descriptors;
* admission: a `POST /predict` is admitted against the app's `Admission` when its headers arrive, so
  the time it then waits for the event loop counts against its deadline (the ticket travels in the
  ASGI scope under `TICKET_KEY`), and one past the limits is answered 503 right there, with no ASGI
  cycle or task: under overload most requests are shed, so shedding must cost far less than serving.

uvicorn's own protocol has none of the timeouts (a client may hold a half-sent request forever) and
no connection cap. The loop factory here installs an exception handler that turns a storm of
failing `accept()` calls (out of file descriptors) into one log line per `LOG_EVERY_S`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from slipway.serving.admission import TICKET_KEY, TIMED_OUT_KEY

log = logging.getLogger("slipway.serving")
EVICT_IDLE_S = 1.0  # an idle connection younger than this is never closed to make room
MAX_REFUSING = (
    32  # refusals held open at once (each waits up to 1 s for the request); past it: closed at once
)
LOG_EVERY_S = 10.0
_REFUSING = "slipway_refusing"
_PREDICT = b"/predict"


@dataclass(frozen=True)
class ConnectionLimits:
    """Per worker: read timeouts, the idle timeout, the connection cap and the Retry-After it answers."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 2048
    retry_after_s: int = 1


def _canned(status: bytes, detail: str, *extra: bytes) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = [
        b"HTTP/1.1 " + status,
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        *extra,
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class _Throttled:
    """A log line at most every LOG_EVERY_S seconds, with how many events it stands for."""

    def __init__(self) -> None:
        self.last = -float("inf")
        self.count = 0

    def hit(self) -> int:
        """Non-blocking; counts an event; the events since the last line when a line is due now, else 0."""
        self.count += 1
        now = time.monotonic()
        if now - self.last < LOG_EVERY_S:
            return 0
        count, self.count, self.last = self.count, 0, now
        return count


_refusals = _Throttled()
_accept_errors = _Throttled()


class _NoWaiter:
    def set(self) -> None:
        """Nothing waits on it."""


class _Answered:
    """Stands in for the request cycle of a request answered at header time: complete, nothing to wake."""

    def __init__(self) -> None:
        self.response_started = self.response_complete = True
        self.disconnected = self.keep_alive = self.more_body = False
        self.scope: dict[str, Any] = {}  # never written: a body timeout checks response_complete first
        self.message_event = _NoWaiter()


_ANSWERED = _Answered()


class SlipwayHttpProtocol(HttpToolsProtocol):
    """One connection; reads `limits` from the server config and `admission`/`metrics` from the app, if present."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, "limits", None) or ConnectionLimits()
        app = self.app
        self.admission = getattr(app, "admission", None)
        self.metrics = getattr(app, "metrics", None)
        self._shed: Callable[[bytes | None], bytes] | None = getattr(app, "shed_response", None)
        self._phase: str | None = None  # "headers" or "body" while a request is being read
        self._read_timer: TimerHandle | None = None
        self._idle_since = 0.0
        self._refusing = False
        self._held = False  # a refusal counted in the server state's _REFUSING

    # -- connection cap ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Counts the connection in, or refuses it at the cap; arms the idle timer."""
        if len(self.connections) >= self.limits.max_connections and not self._evict_idle():
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.keep_alive_s, self.timeout_keep_alive_handler
        )

    def _idle(self) -> bool:
        return (
            self._phase is None and (self.cycle is None or self.cycle.response_complete) and not self.pipeline
        )

    def _evict_idle(self) -> bool:
        now = self.loop.time()
        oldest: SlipwayHttpProtocol | None = None
        for conn in self.connections:
            if (
                isinstance(conn, SlipwayHttpProtocol)
                and conn._idle()
                and now - conn._idle_since >= EVICT_IDLE_S
                and (oldest is None or conn._idle_since < oldest._idle_since)
            ):
                oldest = conn
        if oldest is None:
            return False
        self.connections.discard(oldest)
        oldest.transport.close()
        return True

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refusing = True
        self.transport = transport
        if self.metrics is not None:
            self.metrics.connection_refused()
        count = _refusals.hit()
        if count:
            log.warning(
                "connection cap of %d reached: %d connection(s) refused (503, or closed past %d refusals at "
                "once); logged every %g s at most",
                self.limits.max_connections,
                count,
                MAX_REFUSING,
                LOG_EVERY_S,
            )
        refusing: int = getattr(self.server_state, _REFUSING, 0)  # per server (worker), on uvicorn's state
        if refusing >= MAX_REFUSING:
            transport.close()
            return
        setattr(self.server_state, _REFUSING, refusing + 1)
        self._held = True
        # answer once the client has sent something (so closing loses nothing), or drop it after a while
        self._read_timer = self.loop.call_later(min(1.0, self.limits.header_timeout_s), transport.close)

    def _refusal(self) -> bytes:
        return _canned(
            b"503 Service Unavailable",
            "overloaded: connection limit reached",
            b"retry-after: " + str(self.limits.retry_after_s).encode(),
            b"x-slipway-shed: connections",
        )

    # -- read timeouts ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Feeds the parser; arms the header or body timer while a request is incomplete."""
        if self._refusing:
            if not self.transport.is_closing():
                self.transport.write(self._refusal())
                self.transport.close()
            return
        super().data_received(data)
        if self._phase is not None and self._read_timer is None and not self.transport.is_closing():
            timeout = self.limits.header_timeout_s if self._phase == "headers" else self.limits.body_timeout_s
            self._read_timer = self.loop.call_later(timeout, self._read_timed_out, self._phase)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self, phase: str) -> None:
        self._read_timer = None
        if self._phase != phase or self.transport.is_closing():
            return
        if self.metrics is not None:
            self.metrics.read_timeout(phase=phase)
        timeout = self.limits.header_timeout_s if phase == "headers" else self.limits.body_timeout_s
        cycle = self.cycle if phase == "body" else None
        if cycle is None or not cycle.response_started:
            self.transport.write(_canned(b"408 Request Timeout", f"{phase}: incomplete after {timeout:g} s"))
        if cycle is not None and not cycle.response_complete:
            cycle.scope[TIMED_OUT_KEY] = phase  # type: ignore[literal-required]
            cycle.disconnected = True  # its app sees http.disconnect and answers nothing more
            cycle.message_event.set()
        self.transport.close()

    # -- parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A request starts: its headers are being read (the connection is not idle any more)."""
        super().on_message_begin()
        self._unset_keepalive_if_required()
        self._phase = "headers"

    def on_headers_complete(self) -> None:
        """Headers done: admits POST /predict against the app's Admission (answering a shed one here), else starts it."""
        self._phase = "body"
        self._cancel_read_timer()
        admission = self.admission
        if (
            admission is not None
            and (self.url == _PREDICT or self.url.startswith(b"/predict?"))
            and self.parser.get_method() == b"POST"
            and (self.cycle is None or self.cycle.response_complete)  # pipelined ones are admitted by the app
        ):
            ticket = admission.arrive(time.monotonic())
            if ticket is None and self._shed is not None:
                self._answer_shed()
                return
            self.scope[TICKET_KEY] = ticket  # type: ignore[literal-required]
        super().on_headers_complete()

    def _answer_shed(self) -> None:
        """503 at header time with no ASGI cycle or task: shedding must cost far less than serving."""
        assert self._shed is not None
        self.cycle = _ANSWERED  # type: ignore[assignment]  # its body, if any, is read and dropped
        if self.transport.is_closing():  # an earlier request of the same read closed it
            return
        given = next((value for name, value in self.headers if name == b"x-request-id"), None)
        self.transport.write(self._shed(given))
        if self.expect_100_continue or not self.parser.should_keep_alive():
            self.transport.close()  # the client would not send the body it announced: do not wait for it
        else:
            self.on_response_complete()

    def on_message_complete(self) -> None:
        """The request is fully read."""
        super().on_message_complete()
        self._phase = None
        self._cancel_read_timer()

    def on_response_complete(self) -> None:
        """The answer is sent: the connection is idle (the keep-alive timer runs) until the next request."""
        super().on_response_complete()
        self._idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancels this connection's timers."""
        self._cancel_read_timer()
        self._phase = None
        if self._held:
            self._held = False
            setattr(self.server_state, _REFUSING, getattr(self.server_state, _REFUSING) - 1)
        super().connection_lost(exc)


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
        count = _accept_errors.hit()
        if count:
            log.error(
                "cannot accept connections: %s (%d time(s); logged every %g s at most)",
                exc,
                count,
                LOG_EVERY_S,
            )
        return
    loop.default_exception_handler(context)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Non-blocking; uvloop's loop (asyncio's without it) whose failing accepts log one line per LOG_EVERY_S."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    loop.set_exception_handler(_quiet_accept_errors)
    return loop
