"""`make bench`, ops part: how fast `slipway why/status/history` answer, as a user runs them (fresh processes).

Builds a small release history in a scratch state folder (real releases through the CLI: ephemeral
Prefect, SQLite MLflow, target none, in-memory image builder), then times each command N times.
Target (issue 6): `slipway why VERSION` answers in <= 2 s.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

WHY_TARGET_S = 2.0
REPO = Path(__file__).resolve().parents[3]


def _slipway() -> str:
    return str(Path(sys.executable).parent / "slipway")


def _state(work: Path, *, releases: int) -> dict[str, str]:
    """Blocking; a scratch state with `releases` real releases and one gate rejection; returns its env."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    raw["deploy"] = {**raw.get("deploy", {}), "target": "none"}
    config = work / "slipway.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {
        **os.environ,
        "SLIPWAY_HOME": str(work / "home"),
        "SLIPWAY_CONFIG": str(config),
        "SLIPWAY_IMAGE_BUILDER": "fake",
    }
    runs = [(seed, None) for seed in range(1, releases + 1)] + [(99, "flipped-labels")]
    for seed, corrupt in runs:
        batch = work / f"batch-{seed}.csv"
        args = [_slipway(), "data", "batch", "--out", str(batch), "--rows", "300", "--seed", str(seed)]
        subprocess.run(
            args + (["--corrupt", corrupt] if corrupt else []), env=env, check=True, capture_output=True
        )
        done = subprocess.run(
            [_slipway(), "release", "--data", str(batch)], env=env, capture_output=True, text=True
        )
        if done.returncode not in (0, 1):
            raise RuntimeError(f"bench release failed ({done.returncode}): {done.stderr[-2000:]}")
    return env


def _time(args: list[str], *, env: dict[str, str], repeats: int) -> dict[str, Any]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([_slipway(), *args], env=env, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return {
        "command": "slipway " + " ".join(args),
        "p50_s": round(statistics.median(seconds), 3),
        "max_s": round(max(seconds), 3),
        "runs": repeats,
    }


def run(out_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Blocking (~1-2 min: the releases); writes ops.json and ops.md to out_dir and returns the document."""
    releases, repeats = (1, 3) if quick else (2, 7)
    with tempfile.TemporaryDirectory(prefix="slipway-bench-ops-") as scratch:  # outside the repo
        env = _state(Path(scratch) / "state", releases=releases)
        rows = [
            _time(["why", "1"], env=env, repeats=repeats),
            _time(["status"], env=env, repeats=repeats),
            _time(["history"], env=env, repeats=repeats),
            _time(["--help"], env=env, repeats=repeats),  # the CLI's own start-up, for scale
        ]
    why = rows[0]
    doc: dict[str, Any] = {
        "why_p50_s": why["p50_s"],
        "why_max_s": why["max_s"],
        "why_target_s": WHY_TARGET_S,
        "why_target_met": why["max_s"] <= WHY_TARGET_S,
        "commands": rows,
        "state": f"{releases} release(s) + 1 gate rejection, SQLite MLflow",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    lines = [
        "# Ops CLI latency (fresh processes)",
        "",
        f"`slipway why` p50 {why['p50_s']} s, max {why['max_s']} s (target <= {WHY_TARGET_S} s: "
        f"{'met' if doc['why_target_met'] else 'MISSED'}); state: {doc['state']}.",
        "",
        "| command | p50 s | max s | runs |",
        "|---|---|---|---|",
        *[f"| `{r['command']}` | {r['p50_s']} | {r['max_s']} | {r['runs']} |" for r in rows],
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ops.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out_dir / "ops.md").write_text("\n".join(lines) + "\n")
    return doc
