"""`make bench`, chaos part: SIGKILL a release at each stage boundary and canary phase (and the router and each
server once) on the local target, then check the invariants (champion, stable only, no orphans, the next release
converges, every version decided).

Writes OUT/chaos.json and OUT/chaos.md (see slipway.bench.chaos) and prints the markdown.
"""

from __future__ import annotations

from slipway.bench.cli import simple_main

if __name__ == "__main__":
    simple_main(
        "chaos",
        description="the kill-point matrix on the local target",
        quick_help="three kill points (a stage, a canary weight, the stable server): checks the plumbing",
    )
