"""`make bench`, image part: the serving image's size and build times, vs a torch-based image.

Writes OUT/image.json (see slipway.bench.image) and prints it. Needs a builder (`make images-setup`);
without one the numbers are null and `reason` says what to install.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    """Parse the flags, run the image benchmark, print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for image.json")
    parser.add_argument(
        "--no-torch", action="store_true", help="skip the torch comparison image (the slow part, ~1-2 min)"
    )
    args = parser.parse_args()

    from slipway.bench.image import run

    doc = run(args.out, repo_root=Path(__file__).resolve().parents[1], with_torch=not args.no_torch)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
