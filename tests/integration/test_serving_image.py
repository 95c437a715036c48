"""The real serving image: built from a bundle of the example MLP, pushed to the loopback registry,
pulled BY DIGEST into a separate podman storage, run read-only as uid 10001, asked for predictions.

Needs buildah, podman + runc, the local base image and a registry (`make images-setup`, root; `.ci/run`
exports the settings). Anywhere else it skips and says which of them is missing.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slipway.images.buildah import BuildahBuilder
from slipway.images.stage import ImageRecord, build_and_push
from slipway.ports import free_port
from slipway.settings import Settings
from tests.support.images import REPO, Podman, builder, git_commit, settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.image_tools]
__all__ = ["builder", "settings"]  # shared fixtures (tests.support.images)

MODEL_NAME = "breast-cancer-mlp"  # what example_bundle writes
MODEL_VERSION = "1"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The example MLP (2 epochs on 48 rows), exported to ONNX, as a serving bundle; and the holdout rows."""
    from slipway.bench.image import example_bundle

    return example_bundle(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def record(builder: BuildahBuilder, bundle: tuple[Path, np.ndarray], settings: Settings) -> ImageRecord:
    """The real serving image, built (twice: the second is all cache) and pushed to the registry."""
    assert settings.image_registry is not None
    kwargs: dict[str, Any] = {
        "bundle_dir": bundle[0],
        "source_dir": REPO,
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "git_commit": git_commit(),
        "registry": settings.image_registry,
        "tls_verify": settings.image_registry_tls_verify,
        "base_image": settings.base_image,
        "work_dir": bundle[0].parent,
    }
    first = build_and_push(builder, **kwargs)
    again = build_and_push(builder, **kwargs)
    print(
        f"\nimage {first.reference}: {first.size_mb} MB; build {first.build_s} s (again {again.build_s} s), "
        f"push {first.push_s} s (again {again.push_s} s)"
    )
    assert (again.image_id, again.digest) == (first.image_id, first.digest)
    return first


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    tool = Podman(tmp_path_factory.mktemp("podman"))
    yield tool
    tool("system", "reset", "--force", check=False, timeout=120)


def http(method: str, url: str, body: Any = None, timeout: float = 5) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_ready(url: str, *, timeout_s: float) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        with contextlib.suppress(OSError):
            if http("GET", url, timeout=1)[0] == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout_s} s")


def test_image_pulled_by_digest_serves_the_same_predictions_as_onnx_runtime(
    record: ImageRecord, bundle: tuple[Path, np.ndarray], podman: Podman, settings: Settings
) -> None:
    import onnxruntime as ort

    # Given the image in the registry, pulled by digest (never by tag) into empty storage
    assert record.reference is not None and record.digest is not None
    tls = str(settings.image_registry_tls_verify).lower()
    start = time.perf_counter()
    podman("pull", "--quiet", f"--tls-verify={tls}", record.reference)
    pull_s = time.perf_counter() - start
    labels = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}", record.reference).stdout)
    assert labels["org.opencontainers.image.revision"] == git_commit()
    assert labels["io.slipway.model.name"] == MODEL_NAME
    assert labels["io.slipway.model.version"] == MODEL_VERSION
    assert labels["io.slipway.model.sha256"] == record.labels["io.slipway.model.sha256"]
    healthcheck = podman("image", "inspect", "--format", "{{json .HealthCheck}}", record.reference).stdout
    assert "/readyz" in healthcheck

    # When it runs read-only, as uid 10001, on a free port
    port = free_port()
    start = time.perf_counter()
    cid = podman(
        "run", "-d", "--init", "--network=host", "--ulimit", "nofile=20000:20000",
        "--ulimit", "nproc=32768:32768", "--read-only", "--tmpfs", "/tmp", "--user", "10001",
        "-e", f"SLIPWAY_SERVE_PORT={port}", record.reference,
    ).stdout.strip()  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=60)
        ready_s = time.perf_counter() - start
        print(f"\npulled by digest in {pull_s:.1f} s; ready {ready_s:.2f} s after `podman run`")

        # Then /predict answers what ONNX Runtime answers offline on the same holdout rows
        folder, holdout = bundle
        rows = holdout[:64]
        status, doc = http("POST", f"http://127.0.0.1:{port}/predict", {"instances": rows.tolist()})
        assert status == 200, doc
        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        logits = session.run(None, {"input": rows.astype(np.float32)})[0]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        assert doc["model_version"] == MODEL_VERSION
        assert [row["label"] for row in doc["predictions"]] == probs.argmax(axis=1).tolist()
        served = [
            [row["probabilities"][c] for c in ("0", "1")] for row in doc["predictions"]
        ]  # keyed by class
        np.testing.assert_allclose(np.array(served), probs, atol=1e-5)

        # and the image's own HEALTHCHECK passes, torch is absent, the root is read-only
        assert podman("healthcheck", "run", cid, check=False).returncode == 0
        no_torch = podman("exec", cid, "python", "-c", "import torch", check=False)
        assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
        assert podman("exec", cid, "sh", "-c", "touch /opt/venv/x", check=False).returncode != 0
        assert podman("exec", cid, "id", "-u").stdout.strip() == "10001"

        # and SIGTERM stops it gracefully (exit 0)
        start = time.perf_counter()
        podman("stop", "--time", "20", cid)
        stop_s = time.perf_counter() - start
        state = podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip()
        assert state == "0", podman("logs", cid, check=False).stderr[-2000:]
        assert stop_s < 15
    finally:
        podman("rm", "--force", cid, check=False)


@pytest.fixture(scope="module")
def sklearn_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A scikit-learn Pipeline (impute, scale, one-hot, LogisticRegression) on string labels, exported by its
    adapter as a serving bundle; and its rows."""
    from slipway.frameworks.sklearn import SklearnAdapter
    from slipway.serving.bundle import write_bundle
    from tests.support.tabular_models import pipeline_case

    case = pipeline_case()
    dst = tmp_path_factory.mktemp("sklearn-image")
    exported = SklearnAdapter().export(
        case.model, example=case.x, path=dst / "export/model.onnx", opset=18, target=case.target
    )
    folder = write_bundle(
        dst / "bundle",
        onnx_path=exported.path,
        model_name="flowers",
        model_version="1",
        features=[f"f{i}" for i in range(case.x.shape[1])],
        task="multiclass",
        classes=list(case.target.classes),
        output="probabilities",
    )
    return folder, case.x


def test_a_scikit_learn_model_image_serves_its_labels_with_neither_torch_nor_sklearn_inside(
    builder: BuildahBuilder, sklearn_bundle: tuple[Path, np.ndarray], podman: Podman, settings: Settings
) -> None:
    import onnxruntime as ort

    from tests.support.tabular_models import SPECIES

    folder, x = sklearn_bundle
    assert settings.image_registry is not None
    record = build_and_push(
        builder,
        bundle_dir=folder,
        source_dir=REPO,
        model_name="flowers",
        model_version="1",
        git_commit=git_commit(),
        registry=settings.image_registry,
        tls_verify=settings.image_registry_tls_verify,
        base_image=settings.base_image,
        work_dir=folder.parent,
    )
    assert record.reference is not None
    podman(
        "pull", "--quiet", f"--tls-verify={str(settings.image_registry_tls_verify).lower()}", record.reference
    )
    port = free_port()
    cid = podman(
        "run", "-d", "--init", "--network=host", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
        "--read-only", "--tmpfs", "/tmp", "--user", "10001",
        "-e", f"SLIPWAY_SERVE_PORT={port}", record.reference,
    ).stdout.strip()  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=60)
        rows = np.nan_to_num(x[:32])  # JSON has no NaN: a missing value is the imputer's job offline only
        status, doc = http("POST", f"http://127.0.0.1:{port}/predict", {"instances": rows.tolist()})
        assert status == 200, doc
        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        probs = session.run(None, {"input": rows.astype(np.float32)})[0]
        assert [row["label"] for row in doc["predictions"]] == [SPECIES[i] for i in probs.argmax(axis=1)]
        served = np.array([[row["probabilities"][c] for c in SPECIES] for row in doc["predictions"]])
        np.testing.assert_allclose(served, probs, atol=1e-5)
        for module in ("torch", "sklearn", "skl2onnx"):
            absent = podman("exec", cid, "python", "-c", f"import {module}", check=False)
            assert absent.returncode != 0 and f"No module named '{module}'" in absent.stderr
    finally:
        podman("rm", "--force", cid, check=False)
