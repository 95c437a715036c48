"""`make bench`, canary part: the seeded simulator over the fault catalogue, through the real controller.

Every run is `slipway.canary.simulate.run_one`: a fake clock, Poisson traffic, one fault class,
and the SAME `run_canary` + `decide` production uses, with the policy of `slipway.yaml` (`canary:`).
Per class (>= 300 seeded runs): promotions, rollbacks, time to rollback (p50/p95, in intervals and
in analysis windows), peak canary weight; A/A, healthy-retrain and F11 false-rollback rates. The
same runs are repeated with a live-only variant of the policy (no shadow phase) to show what the
live checks catch on their own. Writes `canary.json` and `canary.md` to `out_dir`.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from slipway.canary.simulate import CLASSES, CONTROL_CLASSES, FAULT_CLASSES, RunResult, SimParams, run_one
from slipway.config import CanaryConfig, PipelineConfig, load_config

RUNS = 300
QUICK_RUNS = 4
AA_TARGET = 0.02  # issue 5: A/A false rollback <= 2%
CHUNK = 25  # runs per worker task


def policy_from(config_path: Path) -> CanaryConfig:
    """Blocking (reads the file); the `canary:` policy of slipway.yaml, defaults when the file is missing."""
    return (load_config(config_path) if config_path.is_file() else PipelineConfig()).canary


TASKS = ("binary", "multiclass", "regression")


def _chunk(args: tuple[str, int, int, dict[str, Any], str]) -> list[RunResult]:
    cls, lo, hi, policy, task = args
    pol = CanaryConfig.model_validate(policy)
    params = SimParams(task=task)
    return [run_one(cls, seed=seed, policy=pol, params=params) for seed in range(lo, hi)]


def simulate_all(policy: CanaryConfig, *, runs: int, workers: int, task: str = "binary") -> list[RunResult]:
    """CPU-bound (no sleeping); `runs` seeded runs per class, in `workers` processes; sorted by class and seed."""
    doc = policy.model_dump(mode="json")
    tasks = [(cls, lo, min(runs, lo + CHUNK), doc, task) for cls in CLASSES for lo in range(0, runs, CHUNK)]
    if workers <= 1:
        chunks = [_chunk(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunks = list(pool.map(_chunk, tasks))
    return sorted((r for c in chunks for r in c), key=lambda r: (CLASSES.index(r.cls), r.seed))


def _q(values: list[float], q: float) -> float | None:
    return round(float(np.quantile(values, q, method="higher")), 2) if values else None


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    """Pure; upper end of the 95% Wilson interval for k successes in n."""
    if n == 0:
        return 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return round(min(1.0, (centre + margin) / (1 + z * z / n)), 4)


def summarize_class(results: list[RunResult]) -> dict[str, Any]:
    """Pure; one class's row: counts, rollback time (intervals and windows), peak weight, reasons, restoration."""
    rolled = [r for r in results if r.result != "promoted"]
    promoted = [r for r in results if r.result == "promoted"]
    n = len(results)
    return {
        "runs": n,
        "promotions": len(promoted),
        "rollbacks": len(rolled),
        "rollback_rate": round(len(rolled) / n, 4) if n else None,
        "rollback_rate_ci95_upper": wilson_upper(len(rolled), n),
        "rollback_intervals_p50": _q([r.intervals for r in rolled], 0.5),
        "rollback_intervals_p95": _q([r.intervals for r in rolled], 0.95),
        "rollback_intervals_max": _q([r.intervals for r in rolled], 1.0),
        "rollback_windows_p50": _q([r.windows for r in rolled], 0.5),
        "rollback_windows_p95": _q([r.windows for r in rolled], 0.95),
        "rollback_windows_max": _q([r.windows for r in rolled], 1.0),
        "promotion_intervals_p50": _q([r.intervals for r in promoted], 0.5),
        "peak_weight_p50": _q([r.peak_weight for r in rolled], 0.5),
        "peak_weight_max": max((r.peak_weight for r in rolled), default=None),
        "caught_by": dict(Counter(c for r in rolled for c in r.failed_checks).most_common()),
        "variants": dict(Counter(re.sub(r"\d+(\.\d+)?", "N", r.variant) for r in results)),
        "post_rollback_stable_share_min": min((r.post_stable_share for r in rolled), default=None),
        "restored_all": all(r.restored for r in results),
    }


def catalogue_targets(table: dict[str, dict[str, Any]], *, policy: CanaryConfig) -> dict[str, dict[str, Any]]:
    """Pure; the catalogue's per-class bounds (shared/notes/canary-analysis.md) and whether the runs met them."""
    first = min(policy.steps)
    ready_bound = policy.readiness_deadline_s / policy.interval_s + 1

    def row(cls: str) -> dict[str, Any]:
        """The class's table row."""
        return table[cls]

    def le(value: Any, bound: float) -> bool:
        """value <= bound, False when there is no value."""
        return value is not None and value <= bound

    checks: dict[str, tuple[str, bool]] = {
        "F1": (
            f"0 promotions, rollback <= readiness deadline + I ({ready_bound:g} I), 0 weight",
            row("F1")["promotions"] == 0
            and le(row("F1")["rollback_intervals_max"], ready_bound)
            and row("F1")["peak_weight_max"] == 0,
        ),
        "F2": (
            f"rollback <= 2 windows (p95), weight never above {first}%",
            le(row("F2")["rollback_windows_p95"], 2) and le(row("F2")["peak_weight_max"], first),
        ),
        "F3": ("rollback <= 2 windows (p95)", le(row("F3")["rollback_windows_p95"], 2)),
        "F4": ("0 promotions", row("F4")["promotions"] == 0),
        "F5": ("rollback <= 3 windows (p95)", le(row("F5")["rollback_windows_p95"], 3)),
        "F6": (
            "caught before promotion in >= 95% (target 100%)",
            row("F6")["promotions"] <= 0.05 * row("F6")["runs"],
        ),
        "F7": (
            "caught before promotion in >= 95% (target 100%)",
            row("F7")["promotions"] <= 0.05 * row("F7")["runs"],
        ),
        "F8": (
            "0 promotions; the stable (old env) restored",
            row("F8")["promotions"] == 0 and row("F8")["restored_all"],
        ),
        "F9": ("never promote", row("F9")["promotions"] == 0),
        "F10": ("never promote", row("F10")["promotions"] == 0),
        "F11": (f"no rollback (rate <= {AA_TARGET:g})", le(row("F11")["rollback_rate"], AA_TARGET)),
        "F12": (
            "0 promotions (the shadow phase pairs latency on the same requests)",
            row("F12")["promotions"] == 0,
        ),
        "noisy": (f"no rollback (rate <= {AA_TARGET:g})", le(row("noisy")["rollback_rate"], AA_TARGET)),
        "F14": (
            ">= 99% of the next window answered by the stable after every rollback",
            all((row(c)["post_rollback_stable_share_min"] or 1.0) >= 0.99 for c in FAULT_CLASSES),
        ),
    }
    return {k: {"target": text, "met": bool(met)} for k, (text, met) in checks.items()}


def f7_effect(params: SimParams, *, n: int = 200_000, seed: int = 0) -> dict[str, float]:
    """Pure given the seed; the F7 shift in logit units, and its population KS D and label agreement."""
    rng = np.random.default_rng(seed)
    sign = np.where(rng.random(n) < params.positive_share, 1.0, -1.0)
    z = sign * params.logit_mean + rng.normal(0.0, params.logit_sd, n)
    shift = params.f7_shift_sd * params.logit_mixture_sd()
    zc = z + shift + rng.normal(0.0, params.retrain_noise, n)
    grid = np.sort(np.concatenate([z, zc]))
    d = (
        np.abs(np.searchsorted(np.sort(z), grid, "right") - np.searchsorted(np.sort(zc), grid, "right")).max()
        / n
    )
    return {
        "shift_sd": params.f7_shift_sd,
        "shift_logit": round(shift, 4),
        "ks_d": round(float(d), 4),
        "label_agreement": round(float(((z >= 0) == (zc >= 0)).mean()), 4),
    }


def _section(results: list[RunResult], policy: CanaryConfig) -> dict[str, Any]:
    table = {cls: summarize_class([r for r in results if r.cls == cls]) for cls in CLASSES}
    faults = [table[c] for c in FAULT_CLASSES]
    worst = max(FAULT_CLASSES, key=lambda c: table[c]["rollback_intervals_p95"] or 0.0)
    return {
        "false_promotions": sum(row["promotions"] for row in faults),
        "aa_false_rollback_rate": table["aa"]["rollback_rate"],
        "aa_false_rollback_ci95_upper": table["aa"]["rollback_rate_ci95_upper"],
        "retrain_false_rollback_rate": table["retrain"]["rollback_rate"],
        "f11_false_rollback_rate": table["F11"]["rollback_rate"],
        "noisy_false_rollback_rate": table["noisy"]["rollback_rate"],
        "worst_p95_rollback_intervals": table[worst]["rollback_intervals_p95"],
        "worst_p95_rollback_class": worst,
        "worst_p95_rollback_windows": max(row["rollback_windows_p95"] or 0.0 for row in faults),
        "catalogue": catalogue_targets(table, policy=policy),
        "classes": table,
    }


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(
    out_dir: Path,
    *,
    quick: bool = False,
    runs: int | None = None,
    workers: int | None = None,
    config_path: Path = Path("slipway.yaml"),
) -> dict[str, Any]:
    """CPU-bound (~1 min on 2 cores; quick: seconds); simulates every class twice, writes canary.json/.md, returns the JSON."""
    started = time.perf_counter()
    n = runs if runs is not None else (QUICK_RUNS if quick else RUNS)
    procs = workers if workers is not None else (1 if quick else min(8, _cores()))
    policy = policy_from(config_path)
    live_only = policy.model_copy(update={"shadow_intervals": 0})
    main = _section(simulate_all(policy, runs=n, workers=procs), policy)
    variant = _section(simulate_all(live_only, runs=n, workers=procs), live_only)
    per_task: dict[str, Any] = {"binary": main}
    for task in TASKS[1:]:
        per_task[task] = _section(simulate_all(policy, runs=n, workers=procs, task=task), policy)
    params = SimParams()
    controls = [sec["classes"][c] for sec in (main, variant) for c in CONTROL_CLASSES]
    k, total = sum(r["rollbacks"] for r in controls), sum(r["runs"] for r in controls)
    doc: dict[str, Any] = {
        "runs_per_class": n,
        "false_promotions": main["false_promotions"],
        "aa_false_rollback_rate": main["aa_false_rollback_rate"],
        "f11_false_rollback_rate": main["f11_false_rollback_rate"],
        "worst_p95_rollback_intervals": main["worst_p95_rollback_intervals"],
        "targets": {
            "false_promotions": {"target": "0", "met": main["false_promotions"] == 0},
            "per_task_false_promotions": {
                "target": "0 for every task",
                "met": all(sec["false_promotions"] == 0 for sec in per_task.values()),
            },
            "per_task_aa_false_rollback_rate": {
                "target": f"<= {AA_TARGET:g} for every task",
                "met": all((sec["aa_false_rollback_rate"] or 0.0) <= AA_TARGET for sec in per_task.values()),
            },
            "aa_false_rollback_rate": {
                "target": f"<= {AA_TARGET:g}",
                "met": (main["aa_false_rollback_rate"] or 0.0) <= AA_TARGET,
            },
        },
        **{key: v for key, v in main.items() if key not in ("classes", "catalogue")},
        "control_false_rollbacks": {
            "classes": list(CONTROL_CLASSES),
            "policies": ["configured", "live_only"],
            "runs": total,
            "rollbacks": k,
            "rate": round(k / total, 4) if total else None,
            "ci95_upper": wilson_upper(k, total),
        },
        "catalogue": main["catalogue"],
        "classes": main["classes"],
        "per_task": {
            task: {
                "runs_per_class": n,
                "false_promotions": sec["false_promotions"],
                "aa_false_rollback_rate": sec["aa_false_rollback_rate"],
                "worst_p95_rollback_intervals": sec["worst_p95_rollback_intervals"],
                "worst_p95_rollback_class": sec["worst_p95_rollback_class"],
                "promotions_by_class": {c: row["promotions"] for c, row in sec["classes"].items()},
            }
            for task, sec in per_task.items()
        },
        "live_only": variant,
        "fault_classes": list(FAULT_CLASSES),
        "control_classes": list(CONTROL_CLASSES),
        "policy": policy.model_dump(mode="json"),
        "sim": asdict(params)
        | {
            "ready_s": list(params.ready_s),
            "f7": f7_effect(params),
            "logit_mixture_sd": round(params.logit_mixture_sd(), 4),
        },
        "intervals_note": "rollback_intervals = elapsed time from start_canary / interval_s (includes the wait "
        "for Ready); rollback_windows = analysis windows observed (shadow included)",
        "quick": quick,
        "workers": procs,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "canary.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    (out_dir / "canary.md").write_text(render_markdown(doc))
    return doc


def _v(value: Any, fmt: str = "g") -> str:
    return "—" if value is None else format(value, fmt)


def _class_table(section: dict[str, Any], names: list[str]) -> list[str]:
    lines = [
        "| class | runs | promoted | rolled back | rollback intervals p50 / p95 | windows p50 / p95 "
        "| peak weight p50 / max | caught by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cls in names:
        row = section["classes"][cls]
        caught = ", ".join(f"{k} {v}" for k, v in list(row["caught_by"].items())[:3]) or "—"
        lines.append(
            f"| {cls} | {row['runs']} | {row['promotions']} | {row['rollbacks']} "
            f"| {_v(row['rollback_intervals_p50'])} / {_v(row['rollback_intervals_p95'])} "
            f"| {_v(row['rollback_windows_p50'])} / {_v(row['rollback_windows_p95'])} "
            f"| {_v(row['peak_weight_p50'])} / {_v(row['peak_weight_max'])} | {caught} |"
        )
    return lines


def render_markdown(doc: dict[str, Any]) -> str:
    """Pure; the canary benchmark document as markdown: headline, catalogue targets, per-class tables."""
    f7 = doc["sim"]["f7"]
    names = ["aa", "retrain", *doc["fault_classes"], "F11", "noisy"]
    lines = [
        "# Canary analysis benchmark (seeded simulator, the production controller and decision)",
        "",
        f"{doc['runs_per_class']} runs per class, policy from slipway.yaml (`canary:`), "
        f"{doc['sim']['rate_rps']:g} rps, {doc['policy']['interval_s']:g} s windows, steps {doc['policy']['steps']}; "
        f"wall {doc['wall_s']} s on {doc['workers']} worker(s){' (quick)' if doc['quick'] else ''}.",
        "",
        f"- false promotions over F1–F12: **{doc['false_promotions']}** (target 0)",
        f"- A/A false rollback rate: **{doc['aa_false_rollback_rate']:.2%}** "
        f"(95% upper {doc['aa_false_rollback_ci95_upper']:.2%}; target ≤ 2%)",
        f"- healthy retrain false rollback rate: {doc['retrain_false_rollback_rate']:.2%}; "
        f"F11 (blip on both arms): {doc['f11_false_rollback_rate']:.2%}; "
        f"noisy machine: {doc['noisy_false_rollback_rate']:.2%}",
        f"- every healthy run pooled (A/A, retrain, F11, noisy; both policies): {doc['control_false_rollbacks']['rollbacks']} "
        f"false rollbacks in {doc['control_false_rollbacks']['runs']} runs "
        f"({doc['control_false_rollbacks']['rate']:.2%}, 95% upper {doc['control_false_rollbacks']['ci95_upper']:.2%})",
        f"- worst p95 time to rollback: {doc['worst_p95_rollback_intervals']} intervals ({doc['worst_p95_rollback_class']})",
        f"- F7 shift: logit +{f7['shift_logit']} ({f7['shift_sd']} sd), population KS D {f7['ks_d']}, "
        f"label agreement {f7['label_agreement']:.1%}",
        "",
        "## Per task (configured policy)",
        "",
        "| task | runs per class | false promotions (F1–F12) | A/A false rollback rate | worst p95 rollback intervals |",
        "|---|---|---|---|---|",
        *(
            f"| {task} | {row['runs_per_class']} | {row['false_promotions']} | {row['aa_false_rollback_rate']:.2%} | "
            f"{row['worst_p95_rollback_intervals']} ({row['worst_p95_rollback_class']}) |"
            for task, row in doc["per_task"].items()
        ),
        "",
        "## Catalogue targets",
        "",
        "| fault | target | met |",
        "|---|---|---|",
        *(
            f"| {k} | {v['target']} | {'yes' if v['met'] else '**no**'} |"
            for k, v in doc["catalogue"].items()
        ),
        "",
        "## Per class (configured policy)",
        "",
        *_class_table(doc, names),
        "",
        "## Per class, live-only variant (`shadow_intervals: 0`)",
        "",
        f"False promotions {doc['live_only']['false_promotions']}, A/A false rollback "
        f"{doc['live_only']['aa_false_rollback_rate']:.2%}, F11 {doc['live_only']['f11_false_rollback_rate']:.2%}, "
        f"noisy {doc['live_only']['noisy_false_rollback_rate']:.2%}. Without a shadow phase (Kubernetes), F12's "
        f"+{doc['sim']['f12_added_ms']:g} ms on a noisy machine is promoted in "
        f"{doc['live_only']['classes']['F12']['promotions']} of {doc['live_only']['classes']['F12']['runs']} runs: "
        "live windows draw the machine's noise independently per arm, and only the paired shadow copies cancel it.",
        "",
        *_class_table(doc["live_only"], names),
        "",
        doc["intervals_note"] + ".",
        "",
    ]
    return "\n".join(lines)
