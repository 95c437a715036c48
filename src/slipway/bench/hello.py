"""The benchmark's baseline: a bare ASGI hello-world on the same uvicorn setup as the model server.

`python -m slipway.bench.hello --port N` answers every request (any method, any path) with a small JSON body.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

BODY = b'{"hello":"world"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(
    scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """ASGI: reads each HTTP request's body and answers BODY; completes the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the request body like any endpoint must, then ignore it
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main(argv: list[str] | None = None) -> int:
    """Blocking until SIGTERM/SIGINT; serves the hello-world with `serve_asgi` (the model server's uvicorn setup)."""
    parser = argparse.ArgumentParser(prog="python -m slipway.bench.hello")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from slipway.serving.server import serve_asgi
    from slipway.serving.settings import ServeSettings

    return serve_asgi(app, ServeSettings(host=args.host, port=args.port))


if __name__ == "__main__":
    sys.exit(main())
