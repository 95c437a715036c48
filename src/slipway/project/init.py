"""`slipway init DIR --data FILE --label COLUMN`: a project folder that releases with no other setup.

Writes DIR/slipway.yaml (the reference is a copy of the data under DIR/data/), a suite generated
from the data under DIR/expectations/, a training entrypoint DIR/train.py (PyTorch or scikit-learn) that the team owns
and edits, and a .gitignore for `.slipway/`. Refuses to overwrite anything. Gate limits start from
what a trivial model scores on the data (the majority class, or the label's mean), so the first
release must beat it; tighten them as the team learns what good looks like.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from slipway.config import DataConfig
from slipway.data.batch_io import read_batch
from slipway.data.reference import Reference, load_reference
from slipway.errors import UsageError
from slipway.names import Task
from slipway.validation.suite import build_reference_suite, save_suite

TRAIN_TEMPLATES: dict[str, Path] = {
    "pytorch": Path(__file__).resolve().parents[1] / "examples" / "tabular.py",
    "sklearn": Path(__file__).resolve().parents[1] / "examples" / "tabular_sklearn.py",
}
_KINDS = {"pytorch": "a PyTorch MLP", "sklearn": "a scikit-learn Pipeline"}


@dataclass
class InitResult:
    """What `init_project` wrote and decided, for the CLI to say."""

    project: Path
    files: list[Path] = field(default_factory=list)
    task: str = ""
    how: str = ""
    features: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    classes: list[object] = field(default_factory=list)


def slug(text: str) -> str:
    """Pure; a lowercase name of [a-z0-9-] for models and experiments."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def _gate(ref: Reference) -> tuple[dict[str, float], dict[str, float], str]:
    """Floors/ceilings a trivial model reaches on the reference, the allowed regression, and why.

    The allowed regression vs the champion is at least two holdout rows' worth of accuracy (on a small
    holdout one row is several points), or a tenth of the trivial rmse; r2's is the same tolerance, what that
    rmse margin costs a model whose rmse is 0.75 x the trivial one (a drop of 0.2 x 0.75 + 0.1² = 0.16).
    """
    y = ref.frame()[ref.label]
    if ref.target.classification:
        majority = float(y.value_counts(normalize=True).max())
        floor = round(min(0.99, majority + 0.5 * (1.0 - majority) * 0.2), 4)
        margin = round(max(0.02, 2.0 / max(len(ref.holdout), 1)), 4)
        why = f"a majority-class guess scores accuracy {majority:.4f}"
        if ref.task == "binary":
            return {"accuracy": floor, "roc_auc": 0.6}, {"accuracy": margin, "roc_auc": 0.01}, why
        return {"accuracy": floor, "macro_f1": 0.3}, {"accuracy": margin, "macro_f1": margin}, why
    baseline = float(np.std(y.to_numpy(dtype=np.float64)))
    why = f"predicting the mean scores rmse {baseline:.4g}"
    margins = {"rmse": round(0.1 * baseline, 6), "r2": round(0.2 * 0.75 + 0.1**2, 4)}
    return {"rmse": round(baseline, 6), "r2": 0.0}, margins, why


def _params(ref: Reference, framework: str) -> str:
    """The trainer's starting parameters: a regression on a few hundred rows needs a smaller, regularized net."""
    if framework == "sklearn":
        return "{estimator: linear, categorical: [], c: 1.0}   # or estimator: random_forest, trees: 100"
    if ref.target.classification:
        return "{hidden: [64, 32], epochs: 80, lr: 0.003, batch_size: 64, weight_decay: 0.0001, dropout: 0.1}"
    return "{hidden: [32], epochs: 120, lr: 0.003, batch_size: 64, weight_decay: 0.01, dropout: 0.0}"


def _yaml_scalar(value: object) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...")


def render_config(
    *,
    name: str,
    reference: str,
    ref: Reference,
    task_line: str,
    gate: tuple[dict[str, float], dict[str, float], str],
    framework: Literal["pytorch", "sklearn"] = "pytorch",
) -> str:
    """Pure; the project's slipway.yaml, commented."""
    thresholds, regression, why = gate
    y = _yaml_scalar
    lines = [
        f"# Slipway pipeline config for {name} (written by `slipway init`; every key is validated on load).",
        f"project: {y(name)}",
        "",
        "data:",
        f"  reference: {y(reference)}   # the data every model is judged against (schema, classes, holdout)",
        f"  label_column: {y(ref.label)}",
        f"  task: {ref.task}   # {task_line}",
        f"  features: {y(list(ref.features))}",
    ]
    if ref.task == "binary":
        lines.append(f"  positive_class: {y(ref.target.classes[1])}   # its probability is the model's score")
    lines += [
        "  holdout_fraction: 0.25   # fixed, seeded holdout (stratified for classification)",
        "  holdout_seed: 7",
        "",
        "validation:",
        f"  suite: expectations/{slug(name)}.json   # reviewed like code; regenerate with `slipway suite generate`",
        "",
        "training:",
        '  entrypoint: "train:train"   # train.py beside this file: yours to edit',
        f"  framework: {framework}   # what train.py returns: pytorch, sklearn or onnx",
        "  seed: 42",
        f"  params: {_params(ref, framework)}",
        "",
        f"quality_gate:   # start: {why}; the first release must beat it",
        f"  thresholds: {y(thresholds)}",
        f"  max_regression: {y(regression)}   # how far behind the champion a challenger may be",
        "",
        "registry:",
        f"  model_name: {y(slug(name))}",
        f"  experiment: {y('slipway-' + slug(name))}",
        "",
        "deploy:",
        "  target: local   # server processes behind a weighted router on 127.0.0.1; kubernetes for a cluster",
        "",
        "batches:",
        "  location: data/incoming   # new batches land here; `slipway release` without --data takes the newest",
        "",
    ]
    return "\n".join(lines)


def init_project(
    directory: Path,
    *,
    data: Path,
    label: str,
    task: Task | None = None,
    name: str | None = None,
    framework: Literal["pytorch", "sklearn"] = "pytorch",
) -> InitResult:
    """Blocking (reads the data, writes a few files); UsageError naming the file it would overwrite or the bad input."""
    project = directory.resolve()
    name = name or project.name
    targets = {
        "config": project / "slipway.yaml",
        "train": project / "train.py",
        "suite": project / "expectations" / f"{slug(name)}.json",
        "gitignore": project / ".gitignore",
    }
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing:
        raise UsageError(f"slipway init: refusing to overwrite {', '.join(existing)}")
    frame = read_batch(data)
    if label not in frame.columns:
        raise UsageError(f"--label {label!r}: not a column of {data} (columns: {list(frame.columns)[:20]})")
    numeric = [c for c in frame.columns if c != label and pd.api.types.is_numeric_dtype(frame[c])]
    excluded = [str(c) for c in frame.columns if c != label and c not in numeric]
    if not numeric:
        raise UsageError(f"{data}: no numeric feature column besides the label {label!r}")
    inside = data.resolve().is_relative_to(project)
    reference_path = data.resolve() if inside else project / "data" / data.name
    cfg = DataConfig(reference=str(data.resolve()), label_column=label, features=numeric, task=task)
    ref = load_reference(cfg, base_dir=project)
    project.mkdir(parents=True, exist_ok=True)
    if not inside:
        reference_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, reference_path)
    relative = str(reference_path.relative_to(project))
    spec = build_reference_suite(ref, name=slug(name).replace("-", "_"), version=1)
    save_suite(spec, targets["suite"])
    task_line = "given with --task" if task else f"inferred: {ref.how}"
    targets["config"].write_text(
        render_config(
            name=name, reference=relative, ref=ref, task_line=task_line, gate=_gate(ref), framework=framework
        )
    )
    _, _, body = TRAIN_TEMPLATES[framework].read_text().partition("copies into a project).")
    header = (
        f'"""Training entrypoint of {name}: {_KINDS[framework]} (written by `slipway init`; yours to edit).'
    )
    targets["train"].write_text(header + body)
    targets["gitignore"].write_text(".slipway/\n__pycache__/\n")
    (project / "data" / "incoming").mkdir(parents=True, exist_ok=True)
    (project / "data" / "incoming" / ".gitkeep").touch()
    return InitResult(
        project=project,
        files=[*targets.values(), *([] if inside else [reference_path])],
        task=ref.task,
        how=task_line,
        features=list(ref.features),
        excluded=excluded,
        classes=list(ref.target.classes),
    )
