"""What a release records of a feature-store project's feature service in the serving bundle, and the online-store
env its servers get (the store itself is the in-memory fake: `make_feature_store` is replaced)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from slipway.config import PipelineConfig, parse_config
from slipway.errors import ConfigError, FeatureStoreError
from slipway.features.fake import FakeDefinition, FakeFeatureStore
from slipway.release.packaging import feature_service_meta
from slipway.serving.features import ONLINE_STORE_ENV
from slipway.serving.settings import features_env, serve_env

FEATURES = ("a", "b", "c")


def config(tmp_path: Path, **features: Any) -> PipelineConfig:
    (tmp_path / "feature_repo").mkdir(exist_ok=True)
    section = {"store": "feast", "repo": "feature_repo", "service": "fake_service"} | features
    return parse_config(
        {"features": section, "serving": {"prediction_log": {"sink": "off"}}}, source="t", base_dir=tmp_path
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFeatureStore:
    offline = pd.DataFrame({"entity_id": [1], "event_timestamp": [pd.Timestamp("2025-01-01", tz="UTC")]})
    for name in FEATURES:
        offline[name] = 1.0
    store = FakeFeatureStore(definition=FakeDefinition(features=FEATURES), offline=offline)
    store.apply()
    monkeypatch.setattr("slipway.features.factory.make_feature_store", lambda cfg, settings: store)
    monkeypatch.delenv(ONLINE_STORE_ENV, raising=False)
    return store


def test_the_bundle_records_the_services_hash_keys_features_and_absolute_paths(
    tmp_path: Path, fake: FakeFeatureStore
) -> None:
    meta = feature_service_meta(config(tmp_path, online_store="sqlite:///online.db"), features=FEATURES)
    assert meta is not None
    assert (meta.name, meta.service_hash, meta.entity_keys) == (
        "fake_service",
        fake.service_hash(),
        ["entity_id"],
    )
    assert meta.features == list(FEATURES)
    assert meta.repo == str((tmp_path / "feature_repo").resolve())
    assert meta.online_store == f"sqlite:///{tmp_path.resolve() / 'online.db'}"


def test_a_registered_versions_own_hash_is_recorded_when_given(
    tmp_path: Path, fake: FakeFeatureStore
) -> None:
    meta = feature_service_meta(config(tmp_path), features=FEATURES, service_hash="0" * 64)
    assert meta is not None and meta.service_hash == "0" * 64 and meta.online_store is None


def test_a_model_reading_other_features_than_the_service_is_an_error_naming_both(
    tmp_path: Path, fake: FakeFeatureStore
) -> None:
    with pytest.raises(
        FeatureStoreError, match=r"serves \['a', 'b', 'c'\], but the model reads \['b', 'a', 'c'\]"
    ):
        feature_service_meta(config(tmp_path), features=["b", "a", "c"])


def test_no_feature_store_records_nothing(tmp_path: Path) -> None:
    cfg = parse_config({}, source="t", base_dir=tmp_path)
    assert feature_service_meta(cfg, features=FEATURES) is None
    assert features_env(cfg) == {}


def test_servers_get_the_online_store_override_from_the_env_first_then_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ONLINE_STORE_ENV, raising=False)
    assert serve_env(config(tmp_path)) == {}  # the repository's own online store
    cfg = config(tmp_path, online_store="sqlite:///data/online.db")
    assert serve_env(cfg) == {ONLINE_STORE_ENV: f"sqlite:///{tmp_path.resolve() / 'data' / 'online.db'}"}
    monkeypatch.setenv(ONLINE_STORE_ENV, "redis://:pw@10.0.0.5:6379/1")
    assert serve_env(cfg) == {ONLINE_STORE_ENV: "redis://:pw@10.0.0.5:6379/1"}  # the password travels in env


@pytest.mark.parametrize(
    "deploy",
    [{"target": "kubernetes"}, {"target": "local", "local": {"runtime": "podman"}}],
    ids=["kubernetes", "podman"],
)
def test_a_feature_store_project_refuses_container_targets(tmp_path: Path, deploy: dict[str, Any]) -> None:
    (tmp_path / "feature_repo").mkdir()
    raw = {
        "features": {"store": "feast", "repo": "feature_repo", "service": "s"},
        "deploy": deploy,
        "serving": {"prediction_log": {"sink": "off"}},
    }
    with pytest.raises(ConfigError, match="served by local processes only"):
        parse_config(raw, source="t", base_dir=tmp_path)
