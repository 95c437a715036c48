"""What a monitor run leaves behind: `<reports>/monitor/<id>/{summary.json,report.html,drift.png}`, one line in
`<reports>/monitor/history.jsonl`, and the Prometheus textfile of its gauges."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

HISTORY: Final = "history.jsonl"
PLOT_RUNS: Final = 100  # newest runs the drift-over-time plot shows


def new_report_id(now: float) -> str:
    """Non-blocking; `m-YYYYmmddTHHMMSSZ-xxxxxx` (sortable by time, unique)."""
    return f"m-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ReportPaths:
    """Where one report's files are."""

    folder: Path
    summary: Path
    html: Path
    plot: Path


def report_paths(root: Path, report_id: str) -> ReportPaths:
    """Pure; the files of report `report_id` under `<root>` (= `<reports>/monitor`)."""
    folder = root / report_id
    return ReportPaths(
        folder=folder, summary=folder / "summary.json", html=folder / "report.html", plot=folder / "drift.png"
    )


def write_atomic(path: Path, text: str) -> None:
    """Blocking; writes through a temp file and a rename (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def append_history(root: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Blocking; appends one run to the history and returns the history (torn or foreign lines skipped)."""
    path = root / HISTORY
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and "report_id" in item:
            out.append(item)
    return out


def plot_history(history: list[dict[str, Any]], *, model_name: str, path: Path) -> Path:
    """Blocking (matplotlib, Agg); drift over time for `model_name`: drifted columns per run and the smallest
    p-value against its threshold (log scale). Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [h for h in history if h.get("model_name") == model_name][-PLOT_RUNS:]
    xs = list(range(len(runs)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    top.bar(xs, [h.get("drifted_columns", 0) for h in runs], color="tab:red")
    top.set_ylabel("drifted columns")
    top.set_title(f"{model_name}: drift over the last {len(runs)} monitor runs")
    bottom.plot(
        xs, [max(h.get("min_p_value") or 1e-300, 1e-300) for h in runs], marker="o", label="smallest p"
    )
    bottom.plot(
        xs, [h.get("threshold") or 0.0 for h in runs], linestyle="--", color="gray", label="threshold"
    )
    bottom.set_yscale("log")
    bottom.set_ylabel("p-value")
    bottom.legend(loc="lower left")
    bottom.set_xticks(xs[:: max(1, len(xs) // 8)])
    bottom.set_xticklabels(
        [str(h.get("created_at", ""))[:16] for h in runs][:: max(1, len(xs) // 8)], rotation=20
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(
    *, model_name: str, version: str, drift: bool, drifted: int, breach: bool, now: float
) -> str:
    """Pure; the monitor's gauges in Prometheus text format (the node_exporter textfile collector reads it)."""
    base = f'model="{_label(model_name)}",version="{_label(version)}"'
    lines = [
        "# HELP slipway_monitor_drift 1 when the newest monitor run found drift for this version, else 0.",
        "# TYPE slipway_monitor_drift gauge",
        f"slipway_monitor_drift{{{base}}} {int(drift)}",
        "# HELP slipway_monitor_drifted_columns Columns (predictions included) that drifted in the newest run.",
        "# TYPE slipway_monitor_drifted_columns gauge",
        f"slipway_monitor_drifted_columns{{{base}}} {drifted}",
        "# HELP slipway_monitor_quality_breach 1 when live quality broke a quality-gate floor in the newest run.",
        "# TYPE slipway_monitor_quality_breach gauge",
        f"slipway_monitor_quality_breach{{{base}}} {int(breach)}",
        "# HELP slipway_monitor_last_run_timestamp_seconds When the newest monitor run judged a window.",
        "# TYPE slipway_monitor_last_run_timestamp_seconds gauge",
        f'slipway_monitor_last_run_timestamp_seconds{{model="{_label(model_name)}"}} {now:.3f}',
    ]
    return "\n".join(lines) + "\n"
