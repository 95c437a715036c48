"""The shared command line of the simple `bench/*.py` scripts: `--quick`, `--out`, run, print the markdown."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def simple_main(name: str, *, description: str, quick_help: str) -> None:
    """Blocking; parses `--quick/--out`, runs `slipway.bench.<name>.run`, prints OUT/<name>.md."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results"), help=f"folder for {name}.json and {name}.md"
    )
    args = parser.parse_args()
    importlib.import_module(f"slipway.bench.{name}").run(args.out, quick=args.quick)
    sys.stdout.write((args.out / f"{name}.md").read_text() + "\n")
