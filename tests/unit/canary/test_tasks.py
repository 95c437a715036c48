"""The canary checks per output type: multiclass labels, regression values, and their offline baselines."""

from __future__ import annotations

import numpy as np
import pytest

from slipway.canary import checks as ck
from slipway.canary.output import Baselines, OutputSpec, offline_baselines
from slipway.canary.simulate import SimParams, run_one
from slipway.config import CanaryConfig, PipelineConfig
from slipway.serving.answers import NO_LABEL, row_scores

POLICY = CanaryConfig()
THREE = OutputSpec(task="multiclass", classes=3)


def probs(labels: np.ndarray, classes: int = 3, top: float = 0.8) -> np.ndarray:
    out = np.full((labels.size, classes), (1.0 - top) / (classes - 1))
    out[np.arange(labels.size), labels] = top
    return out


def test_rows_are_summarized_per_task() -> None:
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    scores, labels = row_scores("binary", p)
    assert scores.tolist() == [0.8, 0.4] and labels.tolist() == [1, 0]  # binary: P(positive)
    scores, labels = row_scores("multiclass", np.array([[0.1, 0.7, 0.2], [np.nan, 0.5, 0.5]]))
    assert scores[0] == 0.7 and labels.tolist() == [1, NO_LABEL] and np.isnan(scores[1])
    values, labels = row_scores("regression", np.array([3.5, -1.0]))
    assert values.tolist() == [3.5, -1.0] and (labels == NO_LABEL).all()


def test_a_shifted_label_distribution_fails_and_the_approved_one_passes() -> None:
    rng = np.random.default_rng(0)
    stable = rng.integers(0, 3, 3000)
    shifted = np.where(rng.random(3000) < 0.3, 0, rng.integers(0, 3, 3000))  # 30% more class 0
    failed = ck.label_shift(shifted, stable, policy=POLICY, spec=THREE)
    assert failed.failed and failed.effect is not None and failed.effect > POLICY.shift_min_effect
    approved = ck.label_shift(shifted, stable, policy=POLICY, spec=THREE, baseline=0.25)
    assert not approved.failed  # the gate approved that change offline
    assert not ck.label_shift(rng.integers(0, 3, 3000), stable, policy=POLICY, spec=THREE).failed


def test_a_classifier_that_predicts_one_class_has_collapsed() -> None:
    rng = np.random.default_rng(1)
    stable_labels = rng.integers(0, 3, 500)
    stable = ck.Pooled(500, 0, np.ones(500), rng.uniform(0.4, 0.99, 500), 0, 0, stable_labels)
    one = ck.Pooled(500, 0, np.ones(500), rng.uniform(0.4, 0.99, 500), 0, 0, np.zeros(500, dtype=np.int64))
    assert ck.collapse(one, stable, policy=POLICY, spec=THREE).failed
    assert not ck.collapse(stable, stable, policy=POLICY, spec=THREE).failed


def test_label_agreement_is_judged_against_what_the_models_agreed_on_offline() -> None:
    rng = np.random.default_rng(2)
    stable = rng.integers(0, 3, 1000)
    canary = np.where(rng.random(1000) < 0.8, stable, (stable + 1) % 3)  # 80% agree
    pairs = list(zip(stable.tolist(), canary.tolist(), strict=True))
    assert ck.shadow_agreement(pairs, policy=POLICY).failed  # below 0.9 with nothing known offline
    assert not ck.shadow_agreement(pairs, policy=POLICY, baseline=0.82).failed  # what the gate approved
    flipped = list(zip(stable.tolist(), ((stable + 1) % 3).tolist(), strict=True))
    assert ck.shadow_agreement(flipped, policy=POLICY, baseline=0.86).failed


def test_mirrored_regression_values_diverge_row_by_row() -> None:
    rng = np.random.default_rng(3)
    stable = rng.normal(150, 60, 400)
    healthy = list(zip(stable.tolist(), (stable + rng.normal(0, 5, 400)).tolist(), strict=True))
    mirrored = list(zip(stable.tolist(), (300.0 - stable).tolist(), strict=True))
    assert not ck.shadow_divergence(healthy, policy=POLICY, baseline=0.06).failed
    assert ck.shadow_divergence(mirrored, policy=POLICY, baseline=0.06).failed
    assert not ck.shadow_shift(
        mirrored, policy=POLICY, spec=OutputSpec.regression((0, 300))
    ).failed  # symmetric: why divergence exists


def test_offline_baselines_use_the_live_statistics() -> None:
    labels = np.array([0, 1, 2, 2, 1, 0] * 50)
    stable = row_scores("multiclass", probs(labels))
    canary = row_scores("multiclass", probs((labels + 1) % 3))
    base = offline_baselines(stable=stable, canary=canary, spec=THREE)
    assert base.agreement == 0.0 and base.label_tvd == 0.0  # a permutation keeps the distribution
    same = offline_baselines(stable=stable, canary=stable, spec=THREE)
    assert same == Baselines(score_ks=0.0, label_tvd=0.0, agreement=1.0, paired_median=0.0)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_flip_fault_is_rolled_back_and_a_healthy_retrain_promoted_for_every_task(task: str) -> None:
    policy = PipelineConfig().canary
    params = SimParams(task=task)
    for seed in range(3):
        assert run_one("retrain", seed=seed, policy=policy, params=params).result == "promoted"
    flips = [run_one("F8", seed=seed, policy=policy, params=params) for seed in range(12)]
    flipped = [r for r in flips if r.variant == "env flips outputs"]
    assert flipped and all(r.result == "rolled_back" for r in flipped)


def test_promotion_waits_until_the_error_rate_is_shown_within_the_margin() -> None:
    from tests.unit.canary.helpers import window

    policy = PipelineConfig().canary
    ambiguous = [
        window(i, weight=50, n_c=300, n_s=300, canary={"errors": 4}, stable={"errors": 3}) for i in range(10)
    ]
    held = ck.error_rate(ambiguous, policy=policy, promotion=True)
    assert (
        held.status is ck.CheckStatus.INSUFFICIENT
    )  # 1.3% vs 1.0% on 3000: not yet shown within 0.75 points
    assert ck.error_rate(ambiguous, policy=policy).status is ck.CheckStatus.PASSED  # no failure either
    clean = [window(i, weight=50, n_c=300, n_s=300) for i in range(10)]
    assert ck.error_rate(clean, policy=policy, promotion=True).status is ck.CheckStatus.PASSED
