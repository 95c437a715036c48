"""`slipway init`: a project folder from one data file, that the release reads with no other setup."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slipway.config import load_config
from slipway.data.reference import load_reference
from slipway.errors import ConfigError, UsageError
from slipway.project.init import init_project
from slipway.training.entrypoint import load_entrypoint
from slipway.validation.suite import load_suite


def data(tmp_path: Path, *, label: str, values: np.ndarray, extra: bool = False) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x (cm)": rng.normal(size=values.size), "count/day": rng.integers(0, 9, values.size)}
    )
    if extra:
        frame["city"] = rng.choice(["oslo", "lima"], values.size)
    frame[label] = values
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (np.array(["yes", "no"] * 60), "binary"),
        (np.array(["a", "b", "c"] * 40), "multiclass"),
        (np.linspace(-5.0, 5.0, 120), "regression"),
    ],
)
def test_init_writes_a_project_the_release_reads(tmp_path: Path, values: np.ndarray, task: str) -> None:
    source = data(tmp_path, label="outcome", values=values)
    result = init_project(tmp_path / "proj", data=source, label="outcome")
    assert result.task == task and "inferred" in result.how
    cfg = load_config(tmp_path / "proj" / "slipway.yaml")
    assert (
        cfg.data.task == task and cfg.data.reference == "data/mine.csv"
    )  # a copy, relative: the folder moves
    ref = load_reference(cfg.data, base_dir=cfg.base_dir)
    assert list(ref.features) == ["x (cm)", "count/day"]
    assert cfg.quality_gate.problems_for(ref.target.task) == []
    assert load_suite(cfg.suite_path()).expectations
    assert callable(load_entrypoint(cfg.training.entrypoint, project_dir=cfg.base_dir))
    assert (tmp_path / "proj" / ".gitignore").read_text().startswith(".slipway/")


def test_init_refuses_to_overwrite_and_names_the_file(tmp_path: Path) -> None:
    source = data(tmp_path, label="y", values=np.linspace(0, 1, 80))
    init_project(tmp_path / "proj", data=source, label="y")
    with pytest.raises(UsageError, match=r"slipway\.yaml"):
        init_project(tmp_path / "proj", data=source, label="y")


def test_non_numeric_columns_are_left_out_and_said(tmp_path: Path) -> None:
    source = data(tmp_path, label="y", values=np.array([0, 1] * 50), extra=True)
    result = init_project(tmp_path / "proj", data=source, label="y")
    assert result.excluded == ["city"] and "city" not in result.features


def test_bad_input_is_named(tmp_path: Path) -> None:
    source = data(tmp_path, label="y", values=np.array([0, 1] * 50))
    with pytest.raises(UsageError, match="--label 'nope'"):
        init_project(tmp_path / "proj", data=source, label="nope")
    with pytest.raises(ConfigError, match="multiclass"):
        init_project(tmp_path / "other", data=source, label="y", task="multiclass")  # two classes only


@pytest.mark.parametrize(
    ("values", "task"),
    [(np.array(["b", "a", "c"] * 40), "multiclass"), (np.linspace(-5.0, 5.0, 120), "regression")],
)
def test_init_with_sklearn_writes_a_pipeline_entrypoint_whose_model_answers_in_the_projects_order(
    tmp_path: Path, values: np.ndarray, task: str
) -> None:
    from slipway.evaluation.scoring import predict
    from slipway.release.stages.training import identify
    from slipway.training.base import TrainingRequest
    from slipway.training.params import call_entrypoint

    source = data(tmp_path, label="outcome", values=values)
    init_project(tmp_path / "proj", data=source, label="outcome", framework="sklearn")
    cfg = load_config(tmp_path / "proj" / "slipway.yaml")
    assert cfg.training.framework == "sklearn"
    ref = load_reference(cfg.data, base_dir=cfg.base_dir)
    request = TrainingRequest(
        frame=ref.pool,
        features=ref.features,
        label=ref.label,
        params={**cfg.training.params, "categorical": ["count/day"]},  # integer codes, one-hot encoded
        seed=0,
        target=ref.target,
    )
    spec = cfg.training.entrypoint
    sys.modules.pop("train", None)  # another test's project imported its own train.py under this name
    try:
        trained = call_entrypoint(load_entrypoint(spec, project_dir=cfg.base_dir), request, spec=spec)
    finally:
        sys.modules.pop("train", None)
    trained = identify(trained, framework="sklearn", configured="logits", target=ref.target)
    assert trained.framework == "sklearn"
    assert trained.output == ("values" if task == "regression" else "probabilities")
    x, _ = ref.holdout_xy()
    answers = predict(trained.module, x, target=ref.target)
    assert answers.shape == ((len(x),) if task == "regression" else (len(x), 3))
    if task != "regression":  # string labels: columns in the project's sorted class order
        assert ref.target.classes == ("a", "b", "c")
        assert np.allclose(answers, trained.module.predict_proba(x))
