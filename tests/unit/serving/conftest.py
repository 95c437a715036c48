"""Serving fixtures: a tiny linear ONNX model (no torch) bundled under the breast-cancer feature names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from slipway.data.reference import Reference
from slipway.serving.app import FastPredictFront, create_app
from slipway.serving.bundle import write_bundle
from slipway.serving.settings import ServeSettings
from tests.support.onnx_models import linear_onnx

N_FEATURES = 30


@pytest.fixture(scope="session")
def features(ref: Reference) -> list[str]:
    return list(ref.features)


@pytest.fixture(scope="session")
def weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N_FEATURES, 2)).astype(np.float32) / 10, np.array([0.1, -0.1], dtype=np.float32)


@pytest.fixture(scope="session")
def rows(ref: Reference) -> np.ndarray:
    """Real holdout rows (float32, schema order)."""
    return ref.holdout_xy()[0][:40]


@pytest.fixture(scope="session")
def bundle_dir(
    tmp_path_factory: pytest.TempPathFactory, features: list[str], weights: tuple[np.ndarray, np.ndarray]
) -> Path:
    """A serving bundle (read-only for tests: copy it before changing files)."""
    root = tmp_path_factory.mktemp("bundle")
    onnx_path = linear_onnx(root / "src" / "model.onnx", weights=weights[0], bias=weights[1])
    return write_bundle(
        root / "bundle",
        onnx_path=onnx_path,
        model_name="tiny",
        model_version="3",
        features=features,
        classes=[0, 1],
    )


def offline_logits(x: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """What the linear model computes, in numpy."""
    return (x.astype(np.float32) @ weights[0] + weights[1]).astype(np.float32)


ClientFactory = Callable[..., Any]


@pytest.fixture(params=["fastapi", "fast-predict-front"])
def client_for(bundle_dir: Path, request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    """client_for(**settings) -> a started TestClient (lifespan run) over the bundle; closed after the test.

    Every app test runs twice: on the FastAPI app, and behind the FastPredictFront `slipway serve` uses.
    """
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = ServeSettings(model=overrides.pop("model", bundle_dir), **overrides)
        app: Any = create_app(settings)
        if request.param == "fast-predict-front":
            app = FastPredictFront(app)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@contextmanager
def started(settings: ServeSettings) -> Iterator[TestClient]:
    """A TestClient whose lifespan runs for the block."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client
