"""Running an image tool (buildah, docker, skopeo) as a subprocess; failures become ImageError."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from slipway.errors import ImageError

# argv, timeout_s -> completed process (text). Backends receive one; tests may pass their own.
Runner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]

TAIL_LINES = 12


def subprocess_runner(argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Runs argv without a shell, capturing text output; never raises on a non-zero exit."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """Pure; the last non-empty `lines` lines of a tool's output, joined by ` | `."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def run_tool(runner: Runner, argv: Sequence[str], *, step: str, timeout_s: float) -> str:
    """Runs one tool command; returns stdout; ImageError(step) with the command and its last output lines."""
    try:
        done = runner(argv, timeout_s)
    except FileNotFoundError:
        raise ImageError(step, f"{argv[0]} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise ImageError(step, f"`{' '.join(argv[:4])} ...` took longer than {timeout_s:.0f} s") from None
    if done.returncode != 0:
        output = tail(f"{done.stdout}\n{done.stderr}") or "(no output)"
        raise ImageError(step, f"`{' '.join(argv[:4])} ...` exited {done.returncode}: {output}")
    return done.stdout
