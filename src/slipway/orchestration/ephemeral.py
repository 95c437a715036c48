"""The temporary Prefect server a CLI release needs when no `PREFECT_API_URL` is set, tied to the CLI's life.

Prefect starts its ephemeral server as a child process on the first client call and stops it at
exit, but a CLI killed with SIGKILL runs no exit handlers: the server was reparented to pid 1 and
ran on (~200 MB, its flow run RUNNING forever). `tethered_ephemeral_server()` starts that same
server from the calling (main) thread with the kernel's parent-death signal set (Linux
`PR_SET_PDEATHSIG`: SIGTERM when the process that started it dies, however it dies), and registers
it as the instance every Prefect client of this process uses.
"""

from __future__ import annotations

import ctypes
import functools
import signal
import subprocess
import types
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def tethered_ephemeral_server() -> str | None:
    """Blocking (the server's start-up, ~20 s on 2 cores); the API URL of the ephemeral Prefect server this
    process now owns (SIGTERMed when it dies); None when a Prefect API is configured (nothing to start).
    Call from the main thread: the parent-death signal follows the thread that started the child."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE

    if PREFECT_API_URL.value() or not PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value():
        return None

    class Tethered(SubprocessASGIServer):
        """Prefect's ephemeral server, its process started with the parent-death signal."""

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            import prefect.server.api.server as module

            namespace = vars(
                module
            )  # the module's `subprocess`, for this one call, with the parent-death signal
            real = namespace["subprocess"]
            namespace["subprocess"] = types.SimpleNamespace(
                Popen=functools.partial(subprocess.Popen, preexec_fn=_die_with_parent),
                TimeoutExpired=subprocess.TimeoutExpired,
            )
            try:
                return super()._run_uvicorn_command()
            finally:
                namespace["subprocess"] = real

    existing = SubprocessASGIServer._instances.get(None)
    if existing is not None and existing.running:  # already started (by Prefect or an earlier call)
        return existing.api_url
    SubprocessASGIServer._instances.pop(None, None)
    server = Tethered()  # takes the None key: every SubprocessASGIServer() of Prefect's returns it
    server.start()
    return server.api_url
