"""Writes infra/work-pools/{kubernetes,gpu-kubernetes}.json from slipway.deploy.k8s_work_pools.

    .venv/bin/python infra/work-pools/render.py [--out infra/work-pools]

Each is the pinned prefect-kubernetes' default base job template plus what the pool adds; `make deploy`
(infra/dev/pools.sh) creates the pools from them. tests/unit/test_work_pools.py fails when they drift.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slipway.deploy.k8s_work_pools import templates


def main() -> None:
    """Render every work-pool template into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent, help="folder (default: infra/work-pools)"
    )
    args = parser.parse_args()
    for name, template in templates().items():
        path = args.out / name
        path.write_text(json.dumps(template, indent=2) + "\n")
        sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
