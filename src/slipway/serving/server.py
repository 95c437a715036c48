"""Run an ASGI app the way `slipway serve` does: uvicorn on uvloop + httptools with Slipway's protocol.

One worker serves the app object in this process; several (`workers`) are uvicorn's supervisor over
spawned processes sharing the listening socket, each building the app from the environment, with
Prometheus multiprocess metrics in a fresh directory so any worker's /metrics has the totals.
Graceful SIGTERM: stop accepting, finish in-flight requests (up to `graceful_timeout_s`), exit 0.
"""

from __future__ import annotations

import copy
import logging
import os
import resource
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from slipway.serving.metrics import MULTIPROC_ENV
from slipway.serving.protocol import ConnectionLimits, SlipwayHttpProtocol
from slipway.serving.settings import ServeSettings, serve_env_vars

STARTUP_FAILED = 3  # uvicorn's own exit code when the app's startup fails
FD_RESERVE = 64  # file descriptors kept free of connections: listening socket, model, logs, refusals
BACKLOG = 1024  # kernel accept queue per listening socket
WORKER_APP = "slipway.serving.server:worker_app"
LOOP = "slipway.serving.protocol:new_event_loop"

log = logging.getLogger("slipway.serving")


def log_config() -> dict[str, Any]:
    """Pure; uvicorn's logging config plus the `slipway` logger on the same stderr handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["slipway"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def open_file_limit() -> int:
    """Blocking (two syscalls); raises this process's soft open-file limit to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_limits(settings: ServeSettings, *, fd_limit: int) -> ConnectionLimits:
    """Pure; the protocol's limits, with the connection cap kept FD_RESERVE below the open-file limit."""
    return ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        keep_alive_s=settings.keep_alive_s,
        max_connections=max(1, min(settings.max_connections, fd_limit - FD_RESERVE)),
        retry_after_s=settings.retry_after_s,
    )


class SlipwayConfig(uvicorn.Config):
    """uvicorn's Config carrying the protocol's ConnectionLimits (pickled to spawned workers with it)."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits


def uvicorn_config(app: Any, settings: ServeSettings, *, factory: bool = False) -> Any:
    """Blocking (raises the open-file limit); the uvicorn Config every Slipway server uses (the benchmark's hello too)."""
    limits = connection_limits(settings, fd_limit=open_file_limit())
    if limits.max_connections < settings.max_connections:
        log.warning(
            "max_connections %d lowered to %d: the open-file limit leaves no more",
            settings.max_connections,
            limits.max_connections,
        )
    return SlipwayConfig(
        app,
        limits=limits,
        factory=factory,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop=LOOP,
        http=SlipwayHttpProtocol,
        interface="asgi3",
        lifespan="on",
        access_log=settings.access_log,
        log_config=log_config(),
        timeout_graceful_shutdown=settings.graceful_timeout_s,
        timeout_keep_alive=settings.keep_alive_s,
        backlog=BACKLOG,
        server_header=False,
        proxy_headers=False,  # nothing in front of it sets them; the ASGI wrapper costs every request
    )


@contextmanager
def _quiet_signals() -> Iterator[None]:
    # uvicorn re-raises the signal it caught once it has shut down; with these no-op handlers in
    # place that re-raise is harmless, so a SIGTERM ends in a clean exit 0 instead of death by signal
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _multiprocess_metrics() -> Iterator[str]:
    given = os.environ.get(MULTIPROC_ENV)
    path = given or tempfile.mkdtemp(prefix="slipway-metrics-")
    for stale in os.listdir(path):  # a previous run's values would be summed in
        if stale.endswith(".db"):
            os.unlink(os.path.join(path, stale))
    os.environ[MULTIPROC_ENV] = path  # inherited by the spawned workers before they import prometheus_client
    try:
        yield path
    finally:
        if given is None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(path, ignore_errors=True)


def serve_asgi(app: Any, settings: ServeSettings, *, factory: bool = False) -> int:
    """Blocking until SIGTERM/SIGINT; 0 after a graceful shutdown, STARTUP_FAILED if the app did not start.

    With `settings.workers` > 1, `app` must be an import string (of a factory when `factory`).
    """
    if settings.workers == 1:
        server = uvicorn.Server(uvicorn_config(app, settings, factory=factory))
        with _quiet_signals():
            server.run()
        return 0 if server.started else STARTUP_FAILED
    if not isinstance(app, str):
        raise ValueError("several workers need the app as an import string")
    from uvicorn.supervisors import Multiprocess

    with _multiprocess_metrics():
        config = uvicorn_config(app, settings, factory=factory)
        sock = config.bind_socket()
        supervisor = Multiprocess(config, sockets=[sock])
        try:
            supervisor.run()
        finally:
            sock.close()
    failed = any(p.exitcode == STARTUP_FAILED for p in supervisor.processes)
    return STARTUP_FAILED if failed else 0


def settings_env(settings: ServeSettings) -> dict[str, str]:
    """Pure; `SLIPWAY_SERVE_*` variables that rebuild `settings` in another process (unset fields omitted)."""
    return serve_env_vars({name: getattr(settings, name) for name in ServeSettings.model_fields})


def worker_app() -> Any:
    """Non-blocking; one worker's app from `SLIPWAY_SERVE_*` (its model loads in the lifespan)."""
    from slipway.serving.app import FastPredictFront, create_app

    return FastPredictFront(create_app(ServeSettings()))


def run_server(settings: ServeSettings) -> int:
    """Blocking until SIGTERM/SIGINT; loads the model first (UsageError on a bad bundle), then serves it; exit code."""
    from slipway.serving.app import FastPredictFront, create_app
    from slipway.serving.features import drop_inherited_feast_metrics_dir
    from slipway.serving.service import load_model

    dropped = drop_inherited_feast_metrics_dir()  # `python -m slipway.serving` drops it before any import
    if dropped is not None:
        log.warning("ignoring PROMETHEUS_MULTIPROC_DIR=%s: Feast made it for another process", dropped)
    runtime = load_model(settings)
    if settings.workers == 1:
        return serve_asgi(FastPredictFront(create_app(settings, runtime=runtime)), settings)
    del runtime  # checked here so a bad bundle exits 2 at once; every worker opens its own session
    os.environ.update(settings_env(settings))
    return serve_asgi(WORKER_APP, settings, factory=True)
