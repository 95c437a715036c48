"""Run an ASGI app on uvicorn the way `slipway serve` does: one worker, graceful SIGTERM, exit 0 after it."""

from __future__ import annotations

import copy
import logging
import signal
from typing import Any

from slipway.serving.settings import ServeSettings

STARTUP_FAILED = 3  # uvicorn's own exit code when the app's startup fails

log = logging.getLogger("slipway.serving")


def log_config() -> dict[str, Any]:
    """Pure; uvicorn's logging config plus the `slipway` logger on the same stderr handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["slipway"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def uvicorn_config(app: Any, settings: ServeSettings) -> Any:
    """Pure; the uvicorn Config every Slipway server uses (the benchmark's hello-world too)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        lifespan="on",
        access_log=settings.access_log,
        log_config=log_config(),
        timeout_graceful_shutdown=settings.graceful_timeout_s,
        server_header=False,
    )


def serve_asgi(app: Any, settings: ServeSettings) -> int:
    """Blocking until SIGTERM/SIGINT; 0 after a graceful shutdown, STARTUP_FAILED if the app did not start."""
    import uvicorn

    server = uvicorn.Server(uvicorn_config(app, settings))
    # uvicorn re-raises the signal it caught once it has shut down; with these no-op handlers in
    # place that re-raise is harmless, so a SIGTERM ends in a clean exit 0 instead of death by signal
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else STARTUP_FAILED


def run_server(settings: ServeSettings) -> int:
    """Blocking until SIGTERM/SIGINT; loads the model first (UsageError on a bad bundle), then serves it; exit code."""
    from slipway.serving.app import FastPredictFront, create_app
    from slipway.serving.service import load_model

    runtime = load_model(settings)
    return serve_asgi(FastPredictFront(create_app(settings, runtime=runtime)), settings)
