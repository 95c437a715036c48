"""The server stacks the serving benchmark compares, one subprocess each:

`python -m slipway.bench.stacks --app hello|predict --stack slipway|uvicorn-h11 --port N [--model BUNDLE]`

* `slipway`: what `slipway serve` runs (`slipway.serving.server`: uvicorn on uvloop + httptools with
  Slipway's protocol: timeouts, connection cap, admission at header time);
* `uvicorn-h11`: the stack before it: stock uvicorn, h11 on the plain asyncio loop, its defaults;
* `granian` (hello only, `granian_command`): granian's ASGI server, one worker, uvloop.

The hello-world is measured on every stack and the fastest one is the baseline, so changing the
server cannot flatter the /predict ratio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

STACKS = ("slipway", "uvicorn-h11", "granian")


def granian_command(python: str, *, host: str) -> list[str]:
    """Pure; the command serving the hello-world on granian (append `--port N`)."""
    return [
        python,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--no-ws",
        "--log-level",
        "warning",
        "--host",
        host,
        "slipway.bench.hello:app",
    ]


def _app(name: str, model: Path | None, host: str, port: int) -> Any:
    if name == "hello":
        from slipway.bench.hello import app

        return app
    from slipway.serving.app import FastPredictFront, create_app
    from slipway.serving.service import load_model
    from slipway.serving.settings import ServeSettings

    settings = ServeSettings(model=model, host=host, port=port)
    return FastPredictFront(create_app(settings, runtime=load_model(settings)))


def serve_h11(app: Any, *, host: str, port: int) -> int:
    """Blocking until SIGTERM; `app` on the previous stack (stock uvicorn, h11, asyncio loop); 0 after shutdown."""
    import uvicorn

    from slipway.serving.server import _quiet_signals, log_config

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        loop="asyncio",
        http="h11",
        lifespan="on",
        access_log=False,
        log_config=log_config(),
        server_header=False,
    )
    server = uvicorn.Server(config)
    with _quiet_signals():
        server.run()
    return 0 if server.started else 3


def main(argv: list[str] | None = None) -> int:
    """Blocking until SIGTERM/SIGINT; serves the hello-world or /predict on the named stack."""
    parser = argparse.ArgumentParser(prog="python -m slipway.bench.stacks")
    parser.add_argument("--app", choices=("hello", "predict"), required=True)
    parser.add_argument("--stack", choices=STACKS[:2], required=True)
    parser.add_argument("--model", type=Path, help="the bundle (predict only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.stack == "uvicorn-h11":
        return serve_h11(_app(args.app, args.model, args.host, args.port), host=args.host, port=args.port)
    from slipway.serving.server import run_server, serve_asgi
    from slipway.serving.settings import ServeSettings

    settings = ServeSettings(model=args.model, host=args.host, port=args.port)
    if args.app == "hello":
        return serve_asgi(_app("hello", None, args.host, args.port), settings)
    return run_server(settings)


if __name__ == "__main__":
    sys.exit(main())
