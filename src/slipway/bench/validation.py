"""`make bench`, validation part: does the generated suite pass fresh data and catch broken data?

Per example reference (one per task): the suite `slipway init` / `slipway suite generate` derives,
then
* false rejections: >= 200 seeded samples of the reference's OWN rows (drawn without replacement,
  so exact duplicates are as rare as in fresh data), each validated; target <= 1%;
* detection: every corruption kind a validation gate must catch (`flipped-labels` is left to the
  quality gate: its rows are valid data), applied to seeded batches; target 100%.
The loops run on the pandas backend, which passes the same contract suite as Great Expectations;
a sample of verdicts is re-checked on Great Expectations and any disagreement is reported.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slipway.config import DataConfig
from slipway.data.generate import Corruption, corrupt_batch, make_batch
from slipway.data.reference import Reference, load_reference
from slipway.validation.base import DataValidator
from slipway.validation.fake import PandasValidator
from slipway.validation.suite import SuiteSpec, build_reference_suite, suite_hash

EXAMPLES: dict[str, DataConfig] = {
    "binary (sklearn:breast_cancer)": DataConfig(reference="sklearn:breast_cancer"),
    "multiclass (sklearn:wine)": DataConfig(reference="sklearn:wine"),
    "multiclass (sklearn:iris)": DataConfig(reference="sklearn:iris"),
    "regression (sklearn:diabetes)": DataConfig(reference="sklearn:diabetes"),
}
GATE_KINDS = [k for k in Corruption if k is not Corruption.flipped_labels]
TARGETS = {"false_rejection_rate": 0.01, "detection_rate": 1.0}


def own_rows(ref: Reference, *, seed: int, rows: int) -> pd.DataFrame:
    """Pure; `rows` of the reference's own rows, without replacement (a fresh sample of the same data)."""
    whole = ref.frame()
    take = np.random.default_rng(seed).choice(len(whole), size=min(rows, len(whole)), replace=False)
    return whole.iloc[np.sort(take)].reset_index(drop=True)


def _verdicts(validator: DataValidator, suite: SuiteSpec, frames: list[pd.DataFrame]) -> list[list[str]]:
    digest = suite_hash(suite)
    out = []
    for i, frame in enumerate(frames):
        report = validator.validate(frame, suite=suite, suite_hash=digest, run_name=f"bench-{i}")
        out.append([f.line() for f in report.failures])
    return out


def bench_reference(
    ref: Reference, *, samples: int, corrupt_samples: int, rows: int, gx_checks: int, gx: DataValidator | None
) -> dict[str, Any]:
    """Blocking (seconds); false rejections over `samples` own-row samples, detection per corruption kind."""
    suite = build_reference_suite(ref, name="bench", version=1)
    size = min(rows, int(0.8 * len(ref.frame())))
    fresh = [own_rows(ref, seed=s, rows=size) for s in range(samples)]
    pandas = PandasValidator()
    started = time.perf_counter()
    fresh_verdicts = _verdicts(pandas, suite, fresh)
    rejected = [v for v in fresh_verdicts if v]
    detection: dict[str, dict[str, Any]] = {}
    corrupted_frames: list[pd.DataFrame] = []
    for kind in GATE_KINDS:
        frames = [
            corrupt_batch(
                make_batch(ref, rows=size, seed=10_000 + s), ref=ref, kind=kind, rng=np.random.default_rng(s)
            )
            for s in range(corrupt_samples)
        ]
        corrupted_frames += frames[:1]
        caught = sum(1 for v in _verdicts(pandas, suite, frames) if v)
        detection[kind.value] = {
            "batches": corrupt_samples,
            "caught": caught,
            "rate": caught / corrupt_samples,
        }
    elapsed = time.perf_counter() - started
    disagreements = []
    if gx is not None and gx_checks:
        probe = fresh[:gx_checks] + corrupted_frames
        for frame, mine, theirs in zip(
            probe, _verdicts(pandas, suite, probe), _verdicts(gx, suite, probe), strict=True
        ):
            if bool(mine) != bool(theirs):
                disagreements.append({"rows": len(frame), "pandas": mine, "great_expectations": theirs})
    return {
        "task": ref.task,
        "reference_rows": len(ref.frame()),
        "sample_rows": size,
        "samples": samples,
        "false_rejections": len(rejected),
        "false_rejection_rate": len(rejected) / samples,
        "false_rejection_examples": rejected[:3],
        "detection": detection,
        "detection_rate": min(d["rate"] for d in detection.values()),
        "great_expectations_checked": (gx_checks + len(corrupted_frames)) if gx is not None else 0,
        "great_expectations_disagreements": disagreements,
        "validate_s": round(elapsed, 2),
    }


def run(out_dir: Path, *, quick: bool = False, work_dir: Path | None = None) -> dict[str, Any]:
    """Blocking (~1 min; quick: seconds); writes validation.json and validation.md, returns the JSON."""
    gx = None
    if not quick:
        from slipway.validation.gx import GreatExpectationsValidator

        work = work_dir or out_dir / "validation-gx"
        gx = GreatExpectationsValidator(project_dir=work / "gx", docs_dir=work / "docs")
    per: dict[str, Any] = {}
    for name, cfg in EXAMPLES.items():
        ref = load_reference(cfg)
        per[name] = bench_reference(
            ref,
            samples=12 if quick else 200,
            corrupt_samples=3 if quick else 50,
            rows=400,
            gx_checks=0 if quick else 10,
            gx=gx,
        )
    doc = {
        "false_rejection_rate": max(r["false_rejection_rate"] for r in per.values()),
        "detection_rate": min(r["detection_rate"] for r in per.values()),
        "targets": TARGETS,
        "met": {
            "false_rejection_rate": max(r["false_rejection_rate"] for r in per.values())
            <= TARGETS["false_rejection_rate"],
            "detection_rate": min(r["detection_rate"] for r in per.values()) >= TARGETS["detection_rate"],
        },
        "not_a_validation_corruption": {
            Corruption.flipped_labels.value: "valid data with wrong labels: the quality gate rejects the model it trains"
        },
        "per_reference": per,
        "quick": quick,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "validation.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out_dir / "validation.md").write_text(render_markdown(doc))
    return doc


def render_markdown(doc: dict[str, Any]) -> str:
    """Pure; the benchmark as a table per reference."""
    lines = [
        "# Validation gate: fresh data passes, broken data is caught",
        "",
        f"* false rejection rate (worst reference): {doc['false_rejection_rate']:.2%} "
        f"(target <= {TARGETS['false_rejection_rate']:.0%}: {'met' if doc['met']['false_rejection_rate'] else 'MISSED'})",
        f"* detection rate (worst corruption kind): {doc['detection_rate']:.0%} "
        f"(target {TARGETS['detection_rate']:.0%}: {'met' if doc['met']['detection_rate'] else 'MISSED'})",
        "",
        "| reference | task | sample rows | samples | false rejections | detection per kind | GX disagreements |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in doc["per_reference"].items():
        kinds = ", ".join(f"{k} {v['caught']}/{v['batches']}" for k, v in r["detection"].items())
        lines.append(
            f"| {name} | {r['task']} | {r['sample_rows']} | {r['samples']} | {r['false_rejections']} "
            f"({r['false_rejection_rate']:.1%}) | {kinds} | {len(r['great_expectations_disagreements'])} |"
        )
    return "\n".join(lines) + "\n"
