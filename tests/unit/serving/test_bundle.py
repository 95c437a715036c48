"""Serving bundles: written idempotently, read from the folder or the .onnx file, refused when wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from slipway.errors import UsageError
from slipway.hashing import file_sha256
from slipway.serving.bundle import (
    META_FILE,
    ONNX_FILE,
    FeatureServiceMeta,
    absolute_store_url,
    public_store_url,
    read_bundle,
    write_bundle,
)
from slipway.serving.model import load_runtime
from tests.support.onnx_models import linear_onnx


def _copy(bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, tmp_path / "copy"))


def test_round_trip_from_the_folder_and_from_the_onnx_file(bundle_dir: Path, features: list[str]) -> None:
    for path in (bundle_dir, bundle_dir / ONNX_FILE):
        bundle = read_bundle(path)
        assert bundle.onnx_path == bundle_dir / ONNX_FILE
        meta = bundle.meta
        assert (meta.model_name, meta.model_version, meta.classes) == ("tiny", "3", [0, 1])
        assert meta.features == features and meta.onnx_sha256 == file_sha256(bundle_dir / ONNX_FILE)
        assert (meta.input_name, meta.output_name) == ("input", "logits")
    doc = json.loads((bundle_dir / META_FILE).read_text())
    assert set(doc) == {
        "model_name",
        "model_version",
        "features",
        "task",
        "classes",
        "output",
        "value_range",
        "value_mean",
        "onnx_sha256",
        "input_name",
        "output_name",
    }


def test_writing_twice_gives_the_same_files(bundle_dir: Path, tmp_path: Path, features: list[str]) -> None:
    copy = _copy(bundle_dir, tmp_path)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    write_bundle(
        copy,
        onnx_path=copy / ONNX_FILE,
        model_name="tiny",
        model_version="3",
        features=features,
        classes=[0, 1],
    )
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_a_changed_onnx_file_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    copy = _copy(bundle_dir, tmp_path)
    linear_onnx(copy / ONNX_FILE, weights=np.ones((30, 2)), bias=np.zeros(2))
    with pytest.raises(UsageError, match=r"sha256 .* does not match model.json's onnx_sha256"):
        read_bundle(copy)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: (d / META_FILE).unlink(), "missing model.json"),
        (lambda d: (d / ONNX_FILE).unlink(), "missing model.onnx"),
        (lambda d: (d / META_FILE).write_text("{oops"), "not readable JSON"),
        (
            lambda d: (d / META_FILE).write_text(json.dumps({"model_name": "x"})),
            "model_version: Field required",
        ),
    ],
)
def test_broken_bundles_name_what_is_wrong(
    bundle_dir: Path, tmp_path: Path, mutate: object, pattern: str
) -> None:
    copy = _copy(bundle_dir, tmp_path)
    mutate(copy)  # type: ignore[operator]
    with pytest.raises(UsageError, match=pattern):
        read_bundle(copy)


def test_paths_that_are_not_bundles(bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such bundle folder"):
        read_bundle(tmp_path / "nope")
    lone = tmp_path / "lone" / "m.onnx"
    lone.parent.mkdir()
    shutil.copyfile(bundle_dir / ONNX_FILE, lone)
    with pytest.raises(UsageError, match=r"no model\.json beside it"):
        read_bundle(lone)
    with pytest.raises(UsageError, match=r"expected a bundle folder or an \.onnx file"):
        read_bundle(bundle_dir / META_FILE)


def test_bad_metadata_is_refused_on_write(bundle_dir: Path, tmp_path: Path, features: list[str]) -> None:
    src = bundle_dir / ONNX_FILE
    with pytest.raises(UsageError, match="features: Value error, has duplicates"):
        write_bundle(
            tmp_path / "b", onnx_path=src, model_name="m", model_version="1", features=["a", "a"], classes=[0]
        )
    with pytest.raises(UsageError, match="no such ONNX file"):
        write_bundle(
            tmp_path / "b",
            onnx_path=tmp_path / "x.onnx",
            model_name="m",
            model_version="1",
            features=features,
            classes=[0, 1],
        )


def test_the_runtime_checks_the_model_against_the_metadata(
    bundle_dir: Path, tmp_path: Path, features: list[str]
) -> None:
    wide = linear_onnx(tmp_path / "wide.onnx", weights=np.ones((30, 3)), bias=np.zeros(3))
    bundle = read_bundle(
        write_bundle(
            tmp_path / "b3",
            onnx_path=wide,
            model_name="m",
            model_version="1",
            features=features,
            classes=[0, 1],
        )
    )
    with pytest.raises(UsageError, match=r"3 output columns, model\.json lists 2 classes"):
        load_runtime(bundle, threads=1)
    narrow = read_bundle(
        write_bundle(
            tmp_path / "b29",
            onnx_path=bundle_dir / ONNX_FILE,
            model_name="m",
            model_version="1",
            features=features[:29],
            classes=[0, 1],
        )
    )
    with pytest.raises(UsageError, match=r"input width 30, model\.json lists 29 features"):
        load_runtime(narrow, threads=1)
    garbage = tmp_path / "g" / "model.onnx"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not a model")
    bad = read_bundle(
        write_bundle(
            garbage.parent,
            onnx_path=garbage,
            model_name="m",
            model_version="1",
            features=features,
            classes=[0, 1],
        )
    )
    with pytest.raises(UsageError, match="onnxruntime cannot load it"):
        load_runtime(bad, threads=1)


# --- feature service ------------------------------------------------------------------------------------

HASH = "ab" * 32


def _service(features: list[str], **overrides: object) -> FeatureServiceMeta:
    doc: dict[str, object] = {
        "name": "tumor_diagnosis",
        "service_hash": HASH,
        "entity_keys": ["patient_id"],
        "features": features,
        "repo": "/srv/feature_repo",
    }
    return FeatureServiceMeta.model_validate(doc | overrides)


def test_a_feature_service_round_trips_without_the_online_stores_password(
    bundle_dir: Path, tmp_path: Path, features: list[str]
) -> None:
    copy = _copy(bundle_dir, tmp_path)
    service = _service(features, online_store="redis://:s3cret@127.0.0.1:6379/2")
    write_bundle(
        copy,
        onnx_path=copy / ONNX_FILE,
        model_name="tiny",
        model_version="3",
        features=features,
        classes=[0, 1],
        feature_service=service,
    )
    doc = json.loads((copy / META_FILE).read_text())
    assert doc["feature_service"]["online_store"] == "redis://127.0.0.1:6379/2"
    assert "s3cret" not in (copy / META_FILE).read_text()
    meta = read_bundle(copy).meta
    assert meta.feature_service is not None
    assert meta.feature_service.model_dump() == {
        "name": "tumor_diagnosis",
        "service_hash": HASH,
        "entity_keys": ["patient_id"],
        "features": features,
        "repo": "/srv/feature_repo",
        "online_store": "redis://127.0.0.1:6379/2",
    }


def test_a_feature_service_serving_other_features_is_refused_naming_both(
    bundle_dir: Path, tmp_path: Path, features: list[str]
) -> None:
    copy = _copy(bundle_dir, tmp_path)
    swapped = [features[1], features[0], *features[2:]]
    with pytest.raises(UsageError, match=r"serves .* but the model reads") as err:
        write_bundle(
            copy,
            onnx_path=copy / ONNX_FILE,
            model_name="tiny",
            model_version="3",
            features=features,
            classes=[0, 1],
            feature_service=_service(swapped),
        )
    assert repr(swapped[:2])[1:-1] in str(err.value) and repr(features[:2])[1:-1] in str(err.value)


def test_a_bundle_without_a_feature_service_reads_as_none(bundle_dir: Path) -> None:
    assert "feature_service" not in json.loads((bundle_dir / META_FILE).read_text())
    assert read_bundle(bundle_dir).meta.feature_service is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/online.db", "sqlite:////cfg/data/online.db"),
        ("sqlite:////abs/online.db", "sqlite:////abs/online.db"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_online_store_urls_are_made_absolute_for_servers_elsewhere(url: str, expected: str) -> None:
    assert absolute_store_url(url, base_dir=Path("/cfg")) == expected


def test_public_store_url_drops_user_and_password() -> None:
    assert public_store_url("redis://user:pw@h:1/0") == "redis://h:1/0"
    assert public_store_url("redis://h:1/0") == "redis://h:1/0"
