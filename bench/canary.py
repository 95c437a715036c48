"""`make bench`, canary part: the fault catalogue through the real controller on a seeded simulator.

Writes OUT/canary.json and OUT/canary.md (see slipway.bench.canary) and prints the markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    """Parse the flags, run the simulation benchmark, print its markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="a few runs per class: checks the plumbing, not rates"
    )
    parser.add_argument("--runs", type=int, default=None, help="seeded runs per class (default 300; quick 4)")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: usable cores, at most 8)"
    )
    parser.add_argument(
        "--config", type=Path, default=Path("slipway.yaml"), help="config whose `canary:` policy runs"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results"), help="folder for canary.json and canary.md"
    )
    args = parser.parse_args()

    from slipway.bench.canary import run

    run(args.out, quick=args.quick, runs=args.runs, workers=args.workers, config_path=args.config)
    print((args.out / "canary.md").read_text())


if __name__ == "__main__":
    main()
