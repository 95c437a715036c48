"""Servability check and the serving image inside the release flow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from flows.release import run_release

from slipway.images.factory import make_builder
from slipway.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.image_tools]


def run(data: Path, config: Path) -> dict[str, Any]:
    return run_release(data=str(data), model_uri=None, config_path=str(config))


def test_a_model_the_server_answers_wrongly_is_rejected_by_the_servability_check(
    home, batch, config_file, mlflow_client, monkeypatch
) -> None:
    # the server subprocess inherits the fault knob: it flips every answer
    monkeypatch.setenv("SLIPWAY_SERVE_FAULT_OUTPUT", "flip")
    result = run(batch(801), config_file())

    assert result["decision"] == "rejected"
    assert result["stage"] == "servability"
    assert any(r.startswith("FAIL: servability FAILED") for r in result["reasons"]), result["reasons"]
    assert mlflow_client.search_model_versions("name='breast-cancer-mlp'") == []
    assert mlflow_client.get_run(result["mlflow_run_id"]).data.tags["slipway.rejected_at"] == "servability"


def test_registered_version_records_servability_and_the_image(
    home, batch, config_file, mlflow_client
) -> None:
    result = run(batch(802), config_file())

    assert result["decision"] == "registered", result["reasons"]
    assert any(r.startswith("servability passed") for r in result["reasons"])
    assert result["image"]["status"] == "built"  # the in-memory builder (see conftest)
    mv = mlflow_client.get_model_version("breast-cancer-mlp", result["model_version"])
    assert mv.tags["slipway.image.status"] == "built"
    assert mv.tags["slipway.image.builder"] == "fake"
    if Settings().image_registry:
        assert mv.tags["slipway.image.digest"].startswith("sha256:")
        assert mv.tags["slipway.image.reference"].endswith("@" + mv.tags["slipway.image.digest"])


def _real_builder_reason() -> str | None:
    reason = make_builder("auto").available()
    if reason:
        return reason
    if not os.environ.get("SLIPWAY_BASE_IMAGE"):
        return "SLIPWAY_BASE_IMAGE is unset (infra/ci/images.sh builds a local base and .ci/run sets it)"
    if not os.environ.get("SLIPWAY_IMAGE_REGISTRY"):
        return "SLIPWAY_IMAGE_REGISTRY is unset (infra/ci/images.sh starts a loopback registry)"
    return None


def test_release_builds_and_pushes_the_real_image_pinned_by_digest(
    home, batch, config_file, mlflow_client, monkeypatch
) -> None:
    reason = _real_builder_reason()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("SLIPWAY_IMAGE_BUILDER", "auto")
    result = run(batch(803), config_file())

    assert result["decision"] == "registered", result["reasons"]
    image = result["image"]
    assert image["status"] == "built", image
    record = image["record"]
    assert record["builder"] in {"buildah", "docker"}
    assert record["digest"].startswith("sha256:")
    assert (
        record["reference"] == f"{os.environ['SLIPWAY_IMAGE_REGISTRY']}/breast-cancer-mlp@{record['digest']}"
    )
    assert record["labels"]["io.slipway.model.version"] == result["model_version"]
    mv = mlflow_client.get_model_version("breast-cancer-mlp", result["model_version"])
    assert mv.tags["slipway.image.digest"] == record["digest"]
    assert mv.tags["slipway.image.reference"] == record["reference"]
    # the image itself answered the holdout before any canary could route users to it
    assert any(r.startswith(f"servability passed (image {record['reference']})") for r in result["reasons"])
    assert mv.tags["slipway.servability"] == f"image {record['reference']}"


def test_an_image_that_answers_unlike_its_bundle_is_rejected_at_servability(
    home, batch, config_file, tmp_path, monkeypatch
) -> None:
    """The smoke test runs THE image: checked against another model's offline answers, it must fail."""
    reason = _real_builder_reason()
    if reason:
        pytest.skip(reason)
    import numpy as np

    from slipway.images.stage import ImageRecord
    from slipway.registry.base import VersionInfo
    from slipway.release.ledger import Evidence
    from slipway.release.packaging import ImageOutcome, serving_bundle
    from slipway.release.stages.servability import smoke_test_image
    from tests.support.onnx_models import linear_onnx
    from tests.support.release import prepared

    monkeypatch.setenv("SLIPWAY_IMAGE_BUILDER", "auto")
    result = run(batch(804), config_file())
    assert result["image"]["status"] == "built", result["reasons"]
    ctx = prepared(tmp_path / "project", seed=804)
    other = linear_onnx(tmp_path / "other.onnx", weights=np.full((30, 2), 0.01), bias=np.array([0.0, 1.0]))
    bundle = serving_bundle(
        other,
        dst=tmp_path / "bundle",
        model_name="breast-cancer-mlp",
        model_version=result["model_version"],
        ref=ctx.reference(),
    )
    evidence = Evidence(
        version=VersionInfo(name="breast-cancer-mlp", version=result["model_version"], run_id=None),
        image=ImageOutcome(
            status="built", record=ImageRecord(**result["image"]["record"]), bundle_dir=str(bundle)
        ),
    )
    outcome = smoke_test_image(ctx, evidence, builder=make_builder("auto"))
    assert (outcome.stage, outcome.verdict) == ("servability", "rejected")
    assert outcome.value is not None and outcome.value.served_by.startswith("image ")
    assert outcome.value.max_abs_diff is not None and outcome.value.max_abs_diff > 1e-3
