"""`make bench`, optimization part: ORT FP32/INT8/INT4 vs PyTorch eager on the example models.

Writes OUT/optimize.json and OUT/optimize.md (see slipway.bench.optimize) and prints the markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    """Parse the flags, run the benchmark, print its markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="tiny warm-up/rounds/iterations: checks the plumbing, not speed"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results"), help="folder for optimize.json and optimize.md"
    )
    args = parser.parse_args()

    from slipway.bench.optimize import run

    run(args.out, quick=args.quick)
    print((args.out / "optimize.md").read_text())


if __name__ == "__main__":
    main()
