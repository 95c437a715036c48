"""`make bench`, serving part: /predict vs a bare uvicorn hello-world, micro-batching on vs off.

Writes OUT/serving.json and OUT/serving.md (see slipway.bench.serving) and prints the markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    """Parse the flags, run the benchmark, print its markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="sub-second load windows: checks the plumbing, not speed"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results"), help="folder for serving.json and serving.md"
    )
    args = parser.parse_args()

    from slipway.bench.serving import run

    run(args.out, quick=args.quick)
    print((args.out / "serving.md").read_text())


if __name__ == "__main__":
    main()
