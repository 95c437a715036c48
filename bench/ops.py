"""`make bench`, ops part: `slipway why/status/history` latency as a user sees it (target: why <= 2 s).

Writes OUT/ops.json and OUT/ops.md (see slipway.bench.ops) and prints the markdown.
"""

from __future__ import annotations

from slipway.bench.cli import simple_main

if __name__ == "__main__":
    simple_main(
        "ops",
        description="slipway why/status/history latency on a scratch release history",
        quick_help="one release, 3 timings per command: checks the plumbing",
    )
