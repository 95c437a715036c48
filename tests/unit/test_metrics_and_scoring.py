"""Metrics against scikit-learn, scoring under the model contract, the entrypoint loader, lineage facts."""

from __future__ import annotations

import hashlib
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from slipway.errors import ConfigError, ModelContractError
from slipway.evaluation.metrics import (
    METRICS,
    PRIMARY,
    accuracy,
    compute_metrics,
    f1,
    log_loss,
    macro_f1,
    mae,
    r2,
    rmse,
    roc_auc,
    roc_auc_ovr,
)
from slipway.evaluation.scoring import evaluate, predict
from slipway.evaluation.target import Target
from slipway.lineage.collect import UNKNOWN, git_state, json_hash, lineage_tags
from slipway.training.entrypoint import code_hash, load_entrypoint

EXAMPLE = "slipway.examples.breast_cancer:train"
BINARY = Target(task="binary", label="target", classes=(0, 1))
REGRESSION = Target(task="regression", label="y")


def evaluate_binary(module: object, *, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return evaluate(module, x=x, y=y, target=BINARY)


def predict_proba(module: object, x: np.ndarray) -> np.ndarray:
    """The binary contract: logits [N, 2] -> probabilities."""
    return predict(module, x, target=BINARY)


def _proba(p1: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - p1, p1], axis=1)


# -- metrics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_sklearn_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.integers(0, 2, size=n)
    p1 = rng.random(n)
    proba = _proba(p1)
    assert accuracy(y, proba) == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    assert roc_auc(y, proba) == pytest.approx(skm.roc_auc_score(y, p1))
    assert f1(y, proba) == pytest.approx(skm.f1_score(y, proba.argmax(axis=1)))


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_sklearn_with_heavy_ties(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 150
    y = rng.integers(0, 2, size=n)
    # few distinct scores: most rows tie, including exact 0.5/0.5 rows
    p1 = rng.choice([0.1, 0.3, 0.5, 0.5, 0.7, 0.9], size=n)
    proba = _proba(p1)
    assert roc_auc(y, proba) == pytest.approx(skm.roc_auc_score(y, p1), abs=1e-12)
    # argmax of a tied row is class 0, as np.argmax and every framework decides it
    assert accuracy(y, proba) == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    assert f1(y, proba) == pytest.approx(skm.f1_score(y, proba.argmax(axis=1)))


def test_roc_auc_all_tied_is_one_half() -> None:
    y = np.array([0, 1, 0, 1, 1])
    assert roc_auc(y, _proba(np.full(5, 0.4))) == pytest.approx(0.5)


def test_roc_auc_perfect_and_inverted() -> None:
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, _proba(np.array([0.1, 0.2, 0.8, 0.9]))) == 1.0
    assert roc_auc(y, _proba(np.array([0.9, 0.8, 0.2, 0.1]))) == 0.0


def test_roc_auc_with_a_single_class_is_nan() -> None:
    # sklearn raises here; the gate must see NaN and fail closed
    assert math.isnan(roc_auc(np.ones(4, dtype=int), _proba(np.array([0.2, 0.4, 0.6, 0.8]))))


def test_f1_without_predicted_or_true_positives_is_zero() -> None:
    y = np.array([0, 0, 1, 1])
    assert f1(y, _proba(np.zeros(4))) == 0.0
    assert f1(np.zeros(4, dtype=int), _proba(np.zeros(4))) == 0.0


def test_compute_metrics_returns_every_metric_of_the_task() -> None:
    y = np.array([0, 1, 1, 0])
    proba = _proba(np.array([0.2, 0.9, 0.4, 0.1]))
    out = compute_metrics("binary", y, proba)
    assert set(out) == set(METRICS["binary"]) == {"accuracy", "roc_auc", "f1", "log_loss"}
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["roc_auc"] == pytest.approx(1.0)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["log_loss"] == pytest.approx(skm.log_loss(y, proba))


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=300)
    proba = rng.dirichlet(np.ones(4), size=300)
    assert accuracy(y, proba) == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    assert macro_f1(y, proba) == pytest.approx(skm.f1_score(y, proba.argmax(axis=1), average="macro"))
    assert roc_auc_ovr(y, proba) == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert log_loss(y, proba) == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2, 3]))


def test_a_perfect_multiclass_model_scores_one_not_more() -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[y] * 0.9 + 0.1 / 3
    assert roc_auc_ovr(y, proba) == pytest.approx(1.0)  # roc_auc of P(class 1) over all rows would not be
    assert (accuracy(y, proba), macro_f1(y, proba)) == (1.0, 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_regression_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, size=200)
    pred = y + rng.normal(0, 3, size=200)
    assert rmse(y, pred) == pytest.approx(skm.mean_squared_error(y, pred) ** 0.5)
    assert mae(y, pred) == pytest.approx(skm.mean_absolute_error(y, pred))
    assert r2(y, pred) == pytest.approx(skm.r2_score(y, pred))


def test_every_task_has_a_primary_metric_with_a_direction() -> None:
    for task, name in PRIMARY.items():
        assert name in METRICS[task]  # type: ignore[index]
    assert (
        not METRICS["regression"]["rmse"].higher_is_better and METRICS["binary"]["roc_auc"].higher_is_better
    )
    assert not METRICS["multiclass"]["log_loss"].higher_is_better


def test_regression_values_come_out_as_a_vector_whatever_the_output_shape() -> None:
    torch.manual_seed(0)
    x = _x()
    column = nn.Linear(30, 1)
    values = predict(column, x, target=REGRESSION)
    assert values.shape == (16,)

    class Flat(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return column(t)[:, 0]

    flat = predict(Flat(), x, target=REGRESSION)
    np.testing.assert_allclose(values, flat, rtol=1e-6)
    with pytest.raises(ModelContractError, match=r"values \[16\]"):
        predict(nn.Linear(30, 3), x, target=REGRESSION)


def test_probabilities_are_used_as_they_are_and_checked() -> None:
    x = _x()
    model = nn.Sequential(nn.Linear(30, 2), nn.Softmax(dim=1))
    proba = predict(model, x, target=BINARY, output="probabilities")
    np.testing.assert_allclose(proba, model(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)
    with pytest.raises(ModelContractError, match=r"training\.output"):
        predict(nn.Linear(30, 2), x, target=BINARY, output="probabilities")


# -- scoring under the model contract ---------------------------------------------------------------


def _x(n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 30)).astype(np.float32)


class _Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom inside forward")


class _NanOut(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 2)
        out[0, 1] = float("nan")
        return out


class _InfOut(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 2)
        out[-1, 0] = float("inf")
        return out


class _TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(30, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(x), torch.zeros(1)


def test_predict_proba_rows_are_softmax_and_sum_to_one() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 2))
    x = _x()
    proba = predict_proba(model, x)
    assert proba.shape == (16, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (proba >= 0).all() and (proba <= 1).all()
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    assert np.allclose(proba, expected, atol=1e-6)


def test_predict_proba_is_stable_on_huge_logits() -> None:
    class Huge(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x[:, 0] * 1e30, -x[:, 0] * 1e30], dim=1)

    proba = predict_proba(Huge(), _x(8))
    assert np.isfinite(proba).all()
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_predict_proba_puts_the_module_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 2), nn.Dropout(0.9))
    model.train()
    x = _x()
    first = predict_proba(model, x)
    assert model.training is False
    assert np.array_equal(first, predict_proba(model, x))  # no dropout noise


def test_predict_proba_takes_the_first_output_of_a_tuple() -> None:
    proba = predict_proba(_TupleOut(), _x(4))
    assert proba.shape == (4, 2)


def test_predict_proba_accepts_float64_input() -> None:
    model = nn.Sequential(nn.Linear(30, 2))
    x = _x(5)
    assert np.allclose(predict_proba(model, x.astype(np.float64)), predict_proba(model, x))


@pytest.mark.parametrize(
    ("module", "shape"),
    [
        (nn.Linear(30, 1), "[16, 1]"),  # one logit instead of one per class
        (nn.Sequential(nn.Linear(30, 2), nn.Flatten(0)), "[32]"),  # 1-D output
    ],
)
def test_wrong_output_shape_is_a_contract_error(module: nn.Module, shape: str) -> None:
    with pytest.raises(ModelContractError) as exc:
        predict_proba(module, _x(16))
    msg = str(exc.value)
    assert f"output has shape {shape}" in msg
    assert "logits [16, 2]" in msg


def test_wrong_batch_size_in_output_is_a_contract_error() -> None:
    class FirstRowOnly(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(1, 2)

    with pytest.raises(ModelContractError, match=r"output has shape \[1, 2\]"):
        predict_proba(FirstRowOnly(), _x(16))


def test_wrong_input_width_is_a_contract_error_naming_the_input() -> None:
    with pytest.raises(ModelContractError, match=r"failed on input float32\[16, 30\]: RuntimeError"):
        predict_proba(nn.Linear(31, 2), _x(16))


def test_module_that_raises_is_a_contract_error_with_its_message() -> None:
    with pytest.raises(ModelContractError) as exc:
        predict_proba(_Raises(), _x(3))
    msg = str(exc.value)
    assert "float32[3, 30]" in msg
    assert "RuntimeError: boom inside forward" in msg


@pytest.mark.parametrize("module", [_NanOut(), _InfOut()], ids=["nan", "inf"])
def test_non_finite_output_is_a_contract_error(module: nn.Module) -> None:
    with pytest.raises(ModelContractError, match="NaN or Inf"):
        predict_proba(module, _x(4))


def test_output_that_is_not_a_tensor_is_a_contract_error() -> None:
    class DictOut(nn.Module):  # e.g. a Hugging Face style model returning {"logits": ...}
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": torch.zeros(x.shape[0], 2)}

    with pytest.raises(ModelContractError, match=r"output is a dict, not a tensor"):
        predict_proba(DictOut(), _x(4))


def test_a_model_of_no_supported_framework_is_a_contract_error_naming_its_type() -> None:
    with pytest.raises(ModelContractError, match=r"builtins\.dict"):
        predict_proba({"weights": [1, 2]}, _x(2))


def test_evaluate_scores_the_module_with_every_metric() -> None:
    # a "model" that copies the label signal from feature 0 is perfect
    class Oracle(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([-x[:, 0], x[:, 0]], dim=1)

    x = _x(40)
    y = (x[:, 0] > 0).astype(np.int64)
    out = evaluate_binary(Oracle(), x=x, y=y)
    assert {k: out[k] for k in ("accuracy", "roc_auc", "f1")} == {"accuracy": 1.0, "roc_auc": 1.0, "f1": 1.0}
    assert out["log_loss"] < 0.5
    flipped = evaluate_binary(Oracle(), x=x, y=1 - y)
    assert flipped["accuracy"] == 0.0 and flipped["roc_auc"] == 0.0


# -- training entrypoint -----------------------------------------------------------------------------


def test_load_entrypoint_returns_the_function() -> None:
    from slipway.examples.breast_cancer import train

    assert load_entrypoint(EXAMPLE) is train


def test_load_entrypoint_missing_module_names_the_key() -> None:
    with pytest.raises(ConfigError) as exc:
        load_entrypoint("no_such_pkg_slipway.mod:train")
    msg = str(exc.value)
    assert "training.entrypoint" in msg
    assert "cannot import module 'no_such_pkg_slipway.mod'" in msg


def test_load_entrypoint_missing_function_names_the_key() -> None:
    with pytest.raises(ConfigError) as exc:
        load_entrypoint("slipway.examples.breast_cancer:fit")
    msg = str(exc.value)
    assert "training.entrypoint" in msg
    assert "has no function 'fit'" in msg


def test_load_entrypoint_rejects_a_non_callable_attribute() -> None:
    with pytest.raises(ConfigError, match=r"training\.entrypoint.*has no function 'DEFAULTS'"):
        load_entrypoint("slipway.examples.breast_cancer:DEFAULTS")


def test_code_hash_is_the_sha256_of_the_entrypoint_source_and_stable() -> None:
    import slipway.examples.tabular as mod  # the example re-exports the tabular trainer: its source is hashed

    expected = hashlib.sha256(Path(mod.__file__).read_bytes()).hexdigest()
    assert code_hash(EXAMPLE) == expected
    assert code_hash(EXAMPLE) == code_hash(EXAMPLE)


def test_code_hash_differs_between_source_files() -> None:
    assert code_hash(EXAMPLE) != code_hash("slipway.training.entrypoint:load_entrypoint")


def test_code_hash_of_a_missing_entrypoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"training\.entrypoint"):
        code_hash("slipway.examples.breast_cancer:nope")


# -- lineage -----------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # never let git discover a repository above tmp_path (e.g. the project checkout)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


def test_git_state_on_a_clean_checkout(git_repo: Path) -> None:
    state = git_state(git_repo)
    assert state == {"commit": _git(git_repo, "rev-parse", "HEAD"), "dirty": "false"}
    assert len(state["commit"]) == 40
    int(state["commit"], 16)


def test_git_state_from_a_subfolder_of_the_checkout(git_repo: Path) -> None:
    sub = git_repo / "configs"
    sub.mkdir()
    assert git_state(sub)["commit"] == _git(git_repo, "rev-parse", "HEAD")


def test_git_state_dirty_after_modifying_a_tracked_file(git_repo: Path) -> None:
    (git_repo / "train.py").write_text("print('v2')\n")
    state = git_state(git_repo)
    assert state["dirty"] == "true"
    assert state["commit"] == _git(git_repo, "rev-parse", "HEAD")


def test_git_state_ignores_untracked_files(git_repo: Path) -> None:
    (git_repo / "scratch.txt").write_text("notes\n")
    assert git_state(git_repo)["dirty"] == "false"


def test_git_state_outside_a_repo_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) == {"commit": UNKNOWN, "dirty": UNKNOWN}
    assert git_state(tmp_path / "does-not-exist") == {"commit": UNKNOWN, "dirty": UNKNOWN}


def test_git_state_without_git_installed_is_unknown(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(git_repo))  # no git executable on PATH
    assert git_state(git_repo) == {"commit": UNKNOWN, "dirty": UNKNOWN}


def _tags(**overrides: str | None) -> dict[str, str]:
    args: dict[str, object] = {
        "git": {"commit": "a" * 40, "dirty": "false"},
        "data_sha256": "d" * 64,
        "suite_sha256": "s" * 64,
        "suite_version": 3,
        "training_config_sha256": "c" * 64,
        "training_code_sha256": "k" * 64,
        "holdout_sha256": "h" * 64,
        "source": "trained:slipway.examples.breast_cancer:train",
    }
    args.update(overrides)
    return lineage_tags(**args)  # type: ignore[arg-type]


def test_lineage_tags_carry_every_required_key() -> None:
    tags = _tags()
    required = {
        "slipway.git_commit": "a" * 40,
        "slipway.git_dirty": "false",
        "slipway.data_sha256": "d" * 64,
        "slipway.suite_sha256": "s" * 64,
        "slipway.suite_version": "3",
        "slipway.training_config_sha256": "c" * 64,
        "slipway.training_code_sha256": "k" * 64,
        "slipway.holdout_sha256": "h" * 64,
        "slipway.model_source": "trained:slipway.examples.breast_cancer:train",
    }
    for key, value in required.items():
        assert tags[key] == value, key
    assert tags["slipway.version.python"] == platform.python_version()
    assert tags["slipway.version.torch"] == metadata.version("torch") == torch.__version__
    assert tags["slipway.version.onnx"] == metadata.version("onnx")
    for pkg in ("torch", "onnx", "mlflow", "python"):
        assert tags[f"slipway.version.{pkg}"] != UNKNOWN
    # registries store tags as strings
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())


def test_lineage_tags_for_an_imported_model_say_there_is_no_code() -> None:
    tags = _tags(training_code_sha256=None, source="runs:/abc/model")
    assert tags["slipway.training_code_sha256"].startswith("n/a")
    assert tags["slipway.model_source"] == "runs:/abc/model"


def test_json_hash_is_canonical() -> None:
    assert json_hash({"a": 1, "b": [1, 2]}) == json_hash({"b": [1, 2], "a": 1})
    assert json_hash({"a": 1}) != json_hash({"a": 2})
