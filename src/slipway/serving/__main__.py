"""`python -m slipway.serving`: the server without the full CLI (the serving image has no typer)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Blocking until SIGTERM/SIGINT; 0 after a graceful shutdown, 2 on a usage error, 3 if startup failed."""
    parser = argparse.ArgumentParser(
        prog="python -m slipway.serving", description="Serve a Slipway model bundle."
    )
    parser.add_argument(
        "--model", type=Path, help="bundle folder or .onnx file (default: $SLIPWAY_SERVE_MODEL)"
    )
    parser.add_argument("--host", help="interface to bind (default: $SLIPWAY_SERVE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $SLIPWAY_SERVE_PORT or 8080)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default 1)")
    parser.add_argument(
        "--microbatch", action=argparse.BooleanOptionalAction, default=None, help="server-side micro-batching"
    )
    parser.add_argument("--workers", type=int, help="server processes sharing the port (default 1)")
    args = parser.parse_args(argv)

    from slipway.serving.features import drop_inherited_feast_metrics_dir

    drop_inherited_feast_metrics_dir()  # before prometheus_client is imported (by the server's modules)
    from slipway.errors import SlipwayError
    from slipway.serving.server import run_server
    from slipway.serving.settings import load_serve_settings

    try:
        settings = load_serve_settings(
            model=args.model,
            host=args.host,
            port=args.port,
            ort_threads=args.threads,
            microbatch=args.microbatch,
            workers=args.workers,
        )
        return run_server(settings)
    except SlipwayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
