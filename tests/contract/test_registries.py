"""One registry contract, run against the in-memory fake and the MLflow backend (SQLite store).

The pipeline only talks to `ModelRegistry`; the fake stands in for MLflow in fast tests, so both must
behave the same for every case below. Subclasses only say how to build the registry and how to crown
a champion (the one write the pipeline itself never does).
"""

from __future__ import annotations

import copy
import json
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from slipway.data.reference import Reference
from slipway.errors import ModelContractError, RegistryError
from slipway.evaluation.scoring import predict
from slipway.names import CHALLENGER, CHAMPION, Tag
from slipway.registry.base import ModelRegistry, Registration
from slipway.registry.fake import InMemoryRegistry
from tests.support.torch_models import one_torch_thread, small_mlp

__all__ = ["one_torch_thread"]  # a fixture, shared

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAME = "contract-model"
TAGS = {
    "slipway.git_commit": "0123456789abcdef0123456789abcdef01234567",
    "slipway.data_sha256": "d" * 64,
    "slipway.quality_gate": "passed",
    "team": "ml-platform",
}
PARAMS: dict[str, Any] = {"epochs": 2, "hidden": [8, 4], "lr": 0.01, "entrypoint": "pkg.mod:train"}
METRICS = {"holdout_accuracy": 0.93, "holdout_roc_auc": 0.975, "holdout_f1": 0.94, "train_loss": 0.31}
DOCUMENTS: dict[str, Any] = {
    "slipway/quality_gate.json": {"passed": True, "reasons": ["first release", "gate passed"]},
    "slipway/validation.json": {"success": True, "failed": []},
}


@pytest.fixture(scope="module")
def model(ref: Reference) -> nn.Module:
    """The example MLP, trained small: real architecture, float32 [N,30] -> [N,2]."""
    return small_mlp(ref)


def registration(
    module: nn.Module | None,
    x: np.ndarray,
    *,
    key: str,
    name: str = NAME,
    tags: dict[str, str] | None = None,
    artifacts: dict[str, Path] | None = None,
) -> Registration:
    return Registration(
        model_name=name,
        module=module,
        input_example=x[:2],
        params=dict(PARAMS),
        metrics=dict(METRICS),
        tags=dict(TAGS if tags is None else tags),
        release_key=key,
        documents=copy.deepcopy(DOCUMENTS),
        artifacts=dict(artifacts or {}),
    )


def local_files(folder: Path) -> dict[str, Path]:
    """Two artifact files, one whose local name differs from its artifact name (as the optimize stage's do)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    renamed = folder / "work-model.onnx"
    renamed.write_bytes(rng.bytes(4096) + bytes(range(256)))  # every byte value, no text-mode surprises
    same = folder / "fp32.onnx"
    same.write_bytes(rng.bytes(1000))
    return {"onnx/x.onnx": renamed, "onnx/fp32.onnx": same}


def outputs(module: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(x)).numpy())


class RegistryContract(ABC):
    """The behaviour every `ModelRegistry` backend must show. Not collected itself (no `Test` prefix)."""

    @pytest.fixture
    @abstractmethod
    def registry(self, tmp_path: Path) -> ModelRegistry:
        """A fresh, empty registry."""

    @abstractmethod
    def crown(self, registry: ModelRegistry, name: str, version: str) -> None:
        """Point the champion alias at a version, the way this backend's operator would."""

    # -- reads on an empty registry ------------------------------------------------------------------

    def test_get_alias_of_unknown_model_is_none(self, registry: ModelRegistry) -> None:
        assert registry.get_alias(model_name="no-such-model", alias=CHAMPION) is None
        assert registry.get_alias(model_name="no-such-model", alias=CHALLENGER) is None

    def test_find_release_of_unknown_model_is_none(self, registry: ModelRegistry) -> None:
        assert registry.find_release(model_name="no-such-model", release_key="k" * 64) is None

    @pytest.mark.parametrize(
        "uri",
        [
            "models:/no-such-model/1",
            "models:/no-such-model@champion",
            "runs:/0123456789abcdef0123456789abcdef/model",
            "not-a-model-uri",
        ],
    )
    def test_load_unknown_uri_raises_contract_error_naming_it(
        self, registry: ModelRegistry, uri: str
    ) -> None:
        with pytest.raises(ModelContractError) as exc:
            registry.load_model(uri=uri)
        assert uri in str(exc.value)

    # -- register --------------------------------------------------------------------------------------

    def test_register_creates_version_one_with_every_tag_and_challenger(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        v = registry.register(registration(model, holdout_x, key="key-1"))
        assert (v.name, v.version) == (NAME, "1")
        assert v.uri == f"models:/{NAME}/1"
        assert v.run_id
        for tag, value in TAGS.items():
            assert v.tags.get(tag) == value, tag
        assert v.tags[Tag.RELEASE_KEY] == "key-1"
        assert CHALLENGER in v.aliases
        assert CHAMPION not in v.aliases

        challenger = registry.get_alias(model_name=NAME, alias=CHALLENGER)
        assert challenger is not None
        assert (challenger.version, challenger.run_id) == ("1", v.run_id)
        assert challenger.tags == v.tags
        # the model exists now, but nobody has crowned a champion
        assert registry.get_alias(model_name=NAME, alias=CHAMPION) is None
        assert registry.get_alias(model_name=NAME, alias="no-such-alias") is None

        found = registry.find_release(model_name=NAME, release_key="key-1")
        assert found is not None
        assert found.version == "1"
        assert CHALLENGER in found.aliases
        assert registry.find_release(model_name=NAME, release_key="key-other") is None

    def test_promote_moves_champion_records_the_previous_one_and_is_idempotent(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        registry.register(registration(model, holdout_x, key="key-1"))
        registry.register(registration(model, holdout_x, key="key-2"))

        first = registry.promote(model_name=NAME, version="1", reason="canary passed")
        assert CHAMPION in first.aliases
        assert first.tags["slipway.previous_champion"] == "none"
        assert first.tags["slipway.decision"] == "promoted"

        second = registry.promote(model_name=NAME, version="2", reason="canary passed again")
        assert second.tags["slipway.previous_champion"] == "1"
        assert second.tags["slipway.promotion_reason"] == "canary passed again"
        champion = registry.get_alias(model_name=NAME, alias=CHAMPION)
        assert champion is not None and champion.version == "2"
        assert CHAMPION not in registry.get_version(model_name=NAME, version="1").aliases

        again = registry.promote(model_name=NAME, version="2", reason="a retry")
        assert again.tags["slipway.previous_champion"] == "1"  # the retry keeps the first record
        assert again.tags["slipway.promotion_reason"] == "canary passed again"

    def test_reject_tags_the_version_and_never_moves_the_champion(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        registry.register(registration(model, holdout_x, key="key-1"))
        registry.promote(model_name=NAME, version="1", reason="first")
        registry.register(registration(model, holdout_x, key="key-2"))

        for _ in range(2):  # idempotent
            rejected = registry.reject(model_name=NAME, version="2", stage="canary", reason="nan outputs")
        assert rejected.tags["slipway.decision"] == "rejected"
        assert rejected.tags["slipway.rejected_at"] == "canary"
        assert rejected.tags["slipway.rejection_reason"] == "nan outputs"
        champion = registry.get_alias(model_name=NAME, alias=CHAMPION)
        assert champion is not None and champion.version == "1"
        with pytest.raises(RegistryError):
            registry.reject(model_name=NAME, version="9", stage="canary", reason="x")
        with pytest.raises(RegistryError):
            registry.promote(model_name=NAME, version="9", reason="x")

    def test_a_decided_version_is_no_longer_the_challenger(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        registry.register(registration(model, holdout_x, key="key-1"))
        promoted = registry.promote(model_name=NAME, version="1", reason="first")
        assert promoted.aliases == (CHAMPION,)  # right after promote: champion only
        registry.register(registration(model, holdout_x, key="key-2"))
        rejected = registry.reject(model_name=NAME, version="2", stage="canary", reason="nan outputs")
        assert CHALLENGER not in rejected.aliases
        assert registry.get_alias(model_name=NAME, alias=CHALLENGER) is None
        registry.register(registration(model, holdout_x, key="key-3"))
        registry.reject(model_name=NAME, version="2", stage="canary", reason="again")  # an old version
        challenger = registry.get_alias(model_name=NAME, alias=CHALLENGER)
        assert challenger is not None and challenger.version == "3"  # the waiting one keeps it

    def test_describe_sets_the_versions_description(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        registry.register(registration(model, holdout_x, key="key-1"))
        text = "**promoted** at stage `canary`: canary passed\n\n[Prefect run](http://prefect.example/runs/x)"
        for _ in range(2):  # idempotent
            described = registry.describe(model_name=NAME, version="1", description=text)
        assert described.description == text
        assert registry.get_version(model_name=NAME, version="1").description == text
        with pytest.raises(RegistryError):
            registry.describe(model_name=NAME, version="9", description="x")

    def test_register_is_idempotent_per_release_key(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        first = registry.register(registration(model, holdout_x, key="key-1"))
        # a retry (same inputs, same key) returns the same version and writes no new one
        again = registry.register(registration(model, holdout_x, key="key-1"))
        assert again.version == first.version == "1"
        assert again.run_id == first.run_id
        found = registry.find_release(model_name=NAME, release_key="key-1")
        assert found is not None and found.version == "1"

        # a different key is a different release: the next version is 2, so the retry created none
        second = registry.register(registration(model, holdout_x, key="key-2"))
        assert second.version == "2"
        assert second.tags[Tag.RELEASE_KEY] == "key-2"
        challenger = registry.get_alias(model_name=NAME, alias=CHALLENGER)
        assert challenger is not None and challenger.version == "2"

        # re-running release 1 completes it again: same version, challenger back on it
        retried = registry.register(registration(model, holdout_x, key="key-1"))
        assert retried.version == "1"
        challenger = registry.get_alias(model_name=NAME, alias=CHALLENGER)
        assert challenger is not None and challenger.version == "1"
        found_2 = registry.find_release(model_name=NAME, release_key="key-2")
        assert found_2 is not None and found_2.version == "2"

    # -- load ------------------------------------------------------------------------------------------

    def test_load_model_by_version_reproduces_the_outputs(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray, ref: Reference
    ) -> None:
        original = copy.deepcopy(model)
        expected = outputs(original, holdout_x)
        v = registry.register(registration(original, holdout_x, key="key-1"))
        # what was registered is frozen: later changes to the trainer's module do not leak in
        with torch.no_grad():
            for p in original.parameters():
                p.zero_()

        loaded = registry.load_model(uri=v.uri)
        # a batch size other than the input example's, through the same scoring path as the gate
        got = outputs(loaded, holdout_x)
        assert got.shape == (len(holdout_x), 2)
        assert got.dtype == np.float32
        assert np.allclose(got, expected, atol=1e-5)
        assert np.allclose(
            predict(loaded, holdout_x, target=ref.target),
            predict(model, holdout_x, target=ref.target),
            atol=1e-6,
        )

        # a version the model does not have
        missing = f"models:/{NAME}/99"
        with pytest.raises(ModelContractError) as exc:
            registry.load_model(uri=missing)
        assert missing in str(exc.value)

    def test_load_model_by_champion_alias_after_crown(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        v = registry.register(registration(model, holdout_x, key="key-1"))
        champion_uri = f"models:/{NAME}@{CHAMPION}"
        with pytest.raises(ModelContractError) as exc:
            registry.load_model(uri=champion_uri)
        assert champion_uri in str(exc.value)

        self.crown(registry, NAME, v.version)

        champion = registry.get_alias(model_name=NAME, alias=CHAMPION)
        assert champion is not None
        assert champion.version == v.version
        assert set(champion.aliases) >= {CHAMPION, CHALLENGER}
        loaded = registry.load_model(uri=champion_uri)
        assert np.allclose(outputs(loaded, holdout_x), outputs(model, holdout_x), atol=1e-5)

    # -- rejection -------------------------------------------------------------------------------------

    def test_record_rejection_returns_a_run_and_registers_nothing(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        reg = registration(
            model, holdout_x, key="rejected-key", tags={**TAGS, "slipway.quality_gate": "rejected"}
        )
        run_id = registry.record_rejection(reg, stage="quality_gate")
        assert isinstance(run_id, str) and run_id
        assert registry.find_release(model_name=NAME, release_key="rejected-key") is None
        assert registry.get_alias(model_name=NAME, alias=CHALLENGER) is None
        with pytest.raises(ModelContractError):
            registry.load_model(uri=f"models:/{NAME}/1")
        # each rejection is its own record
        assert registry.record_rejection(reg, stage="quality_gate") != run_id

    # -- artifacts ---------------------------------------------------------------------------------------

    def test_artifacts_given_at_registration_fetch_back_byte_identical(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray, tmp_path: Path
    ) -> None:
        files = local_files(tmp_path / "src")
        expected = {art: local.read_bytes() for art, local in files.items()}
        v = registry.register(registration(model, holdout_x, key="key-1", artifacts=files))
        # what was registered is frozen: later writes to the local files do not leak in
        for local in files.values():
            local.write_bytes(b"overwritten after registration")

        for art, blob in expected.items():
            dst = tmp_path / "dl" / art.replace("/", "_")
            got = registry.fetch_artifact(model_name=NAME, version=v.version, path=art, dst=dst)
            assert got == dst / art  # the artifact path, kept under dst, not the local file's name
            assert got.read_bytes() == blob

    def test_a_bytes_document_given_at_registration_is_the_file_itself(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray, tmp_path: Path
    ) -> None:
        """Bytes documents (the drift reference, plots) are stored as files, not as JSON of their repr."""
        blob = bytes(range(256)) * 8
        reg = registration(model, holdout_x, key="key-bytes")
        v = registry.register(
            replace(reg, documents={**reg.documents, "slipway/monitor/reference.npz": blob})
        )
        got = registry.fetch_artifact(
            model_name=NAME, version=v.version, path="slipway/monitor/reference.npz", dst=tmp_path / "dl"
        )
        assert got.read_bytes() == blob

    def test_fetch_unknown_artifact_or_version_raises_naming_it(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray, tmp_path: Path
    ) -> None:
        v = registry.register(registration(model, holdout_x, key="key-1", artifacts=local_files(tmp_path)))
        with pytest.raises(RegistryError) as exc:
            registry.fetch_artifact(
                model_name=NAME, version=v.version, path="onnx/missing.onnx", dst=tmp_path / "dl"
            )
        assert "onnx/missing.onnx" in str(exc.value)
        assert not (tmp_path / "dl" / "onnx" / "missing.onnx").exists()
        with pytest.raises(RegistryError) as exc:
            registry.fetch_artifact(model_name=NAME, version="99", path="onnx/x.onnx", dst=tmp_path / "dl")
        assert f"{NAME}/99" in str(exc.value)

    # -- annotate --------------------------------------------------------------------------------------

    def test_annotate_adds_tags_and_documents_idempotently(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray, tmp_path: Path
    ) -> None:
        v = registry.register(registration(model, holdout_x, key="key-1"))
        extra = {"slipway.tensorrt.status": "built", "slipway.tensorrt.gpu": "NVIDIA H100"}
        doc = {"slipway/tensorrt.json": {"status": "built", "engines": [{"precision": "fp16"}]}}

        first = registry.annotate(model_name=NAME, version=v.version, tags=extra, documents=doc)
        again = registry.annotate(model_name=NAME, version=v.version, tags=extra, documents=doc)
        assert first.tags == again.tags == {**v.tags, **extra}  # added, nothing lost, nothing doubled
        assert (again.version, again.run_id) == (v.version, v.run_id)

        for seen in (
            registry.get_alias(model_name=NAME, alias=CHALLENGER),
            registry.find_release(model_name=NAME, release_key="key-1"),
        ):
            assert seen is not None
            assert seen.version == v.version
            assert seen.tags == {**v.tags, **extra}
            assert CHALLENGER in seen.aliases  # annotating moves no alias
        got = registry.fetch_artifact(
            model_name=NAME, version=v.version, path="slipway/tensorrt.json", dst=tmp_path / "dl"
        )
        assert json.loads(got.read_text()) == doc["slipway/tensorrt.json"]

        # same key, new value: overwritten, not appended; the next release is still version 2
        changed = registry.annotate(
            model_name=NAME, version=v.version, tags={"slipway.tensorrt.status": "failed"}, documents={}
        )
        assert changed.tags["slipway.tensorrt.status"] == "failed"
        assert registry.register(registration(model, holdout_x, key="key-2")).version == "2"

    @pytest.mark.parametrize(("name", "version"), [(NAME, "99"), ("no-such-model", "1")])
    def test_annotate_unknown_version_raises_naming_it(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray, name: str, version: str
    ) -> None:
        registry.register(registration(model, holdout_x, key="key-1"))
        with pytest.raises(RegistryError) as exc:
            registry.annotate(model_name=name, version=version, tags={"k": "v"}, documents={})
        assert f"{name}/{version}" in str(exc.value)
        assert registry.find_release(model_name=NAME, release_key="key-1") is not None

    # -- listing (the operations CLI: history, status, rollback) ----------------------------------------

    def test_list_versions_is_newest_first_with_tags_aliases_and_times(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        assert registry.list_versions(model_name=NAME) == []
        assert registry.list_versions(model_name="no-such-model") == []
        for key in ("key-1", "key-2", "key-3"):
            registry.register(registration(model, holdout_x, key=key))
        registry.promote(model_name=NAME, version="2", reason="canary passed")

        listed = registry.list_versions(model_name=NAME)
        assert [v.version for v in listed] == ["3", "2", "1"]
        by_version = {v.version: v for v in listed}
        assert by_version["3"].aliases == (CHALLENGER,)
        assert by_version["2"].aliases == (CHAMPION,)
        assert by_version["1"].aliases == ()
        assert by_version["2"].tags["slipway.decision"] == "promoted"
        assert by_version["1"].tags[Tag.RELEASE_KEY] == "key-1"
        assert by_version["1"].tags == registry.get_version(model_name=NAME, version="1").tags
        times = [v.created_at for v in listed]
        assert all(t is not None and t > 1.7e9 for t in times), times  # epoch seconds, not ms
        assert times == sorted(times, reverse=True)  # type: ignore[type-var]
        assert registry.get_version(model_name=NAME, version="2").created_at == by_version["2"].created_at
        # another model's versions stay out
        registry.register(registration(model, holdout_x, key="other-1", name="other-model"))
        assert [v.version for v in registry.list_versions(model_name=NAME)] == ["3", "2", "1"]

    def test_list_rejections_returns_this_models_attempts_newest_first_with_reasons(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        assert registry.list_rejections(model_name=NAME) == []
        gate_doc = {
            "reasons": ["first release", "FAIL: accuracy 0.5000 >= floor 0.9000", "gate rejected: accuracy"]
        }
        gate_reg = registration(model, holdout_x, key="rej-1")
        gate_reg.documents["slipway/quality_gate.json"] = gate_doc
        first = registry.record_rejection(gate_reg, stage="quality_gate")
        parity_reg = registration(model, holdout_x, key="rej-2")
        parity_reg.documents["slipway/optimization_error.json"] = {"stage": "export", "cause": "op Foo"}
        second = registry.record_rejection(parity_reg, stage="export")
        registry.record_rejection(registration(model, holdout_x, key="x", name="other-model"), stage="parity")
        registry.register(registration(model, holdout_x, key="key-1"))  # a version is no rejection

        got = registry.list_rejections(model_name=NAME)
        assert [r.run_id for r in got] == [second, first]
        assert [r.stage for r in got] == ["export", "quality_gate"]
        assert got[1].reason == "FAIL: accuracy 0.5000 >= floor 0.9000; gate rejected: accuracy"
        assert got[0].reason == "export: op Foo"
        assert got[0].created_at >= got[1].created_at > 1.7e9
        assert got[1].tags[Tag.RELEASE_KEY] == "rej-1"
        assert [r.stage for r in registry.list_rejections(model_name="other-model")] == ["parity"]

    def test_promote_records_when_and_keeps_the_first_promotion_time(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        for key in ("key-1", "key-2"):
            registry.register(registration(model, holdout_x, key=key))
        first = registry.promote(model_name=NAME, version="1", reason="first")
        promoted_at = first.tags[Tag.PROMOTED_AT]
        assert promoted_at.startswith("20") and promoted_at.endswith("+00:00")  # ISO 8601, UTC
        assert first.tags[Tag.CHAMPION_SINCE] == promoted_at
        assert first.tags[Tag.CHAMPION_VIA] == "promotion"
        registry.promote(model_name=NAME, version="2", reason="second")
        again = registry.promote(model_name=NAME, version="1", reason="back again")
        assert again.tags[Tag.PROMOTED_AT] == promoted_at  # the first promotion time is kept
        assert again.tags["slipway.previous_champion"] == "2"
        assert again.tags[Tag.CHAMPION_SINCE] >= promoted_at

    def test_set_champion_moves_the_alias_with_tags_but_no_promotion_record(
        self, registry: ModelRegistry, model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        for key in ("key-1", "key-2"):
            registry.register(registration(model, holdout_x, key=key))
        registry.promote(model_name=NAME, version="2", reason="canary passed")
        for _ in range(2):  # idempotent
            moved = registry.set_champion(
                model_name=NAME, version="1", tags={"slipway.rollback.reason": "bad outputs"}
            )
        assert CHAMPION in moved.aliases
        assert moved.tags["slipway.rollback.reason"] == "bad outputs"
        assert "slipway.decision" not in moved.tags  # not a promotion
        champion = registry.get_alias(model_name=NAME, alias=CHAMPION)
        assert champion is not None and champion.version == "1"
        assert CHAMPION not in registry.get_version(model_name=NAME, version="2").aliases
        with pytest.raises(RegistryError) as exc:
            registry.set_champion(model_name=NAME, version="9", tags={})
        assert f"{NAME}/9" in str(exc.value)
        champion = registry.get_alias(model_name=NAME, alias=CHAMPION)
        assert champion is not None and champion.version == "1"


# -- backends ----------------------------------------------------------------------------------------


class TestInMemoryRegistry(RegistryContract):
    @pytest.fixture
    def registry(self, tmp_path: Path) -> ModelRegistry:
        return InMemoryRegistry()

    def crown(self, registry: ModelRegistry, name: str, version: str) -> None:
        assert isinstance(registry, InMemoryRegistry)
        registry.set_alias(model_name=name, alias=CHAMPION, version=version)


@pytest.fixture(scope="module")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow SQLite store; copying it saves the ~1.5 s migration per test."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()  # creates and migrates the tables
    return path


@pytest.fixture
def mlflow_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template_db: Path
) -> Iterator[tuple[Any, Any]]:
    """(MlflowRegistry, MlflowClient) on a fresh SQLite store; restores MLflow's process-global URI."""
    import mlflow
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow import MlflowClient

    from slipway.registry.mlflow_backend import MlflowRegistry

    # the backend calls mlflow.set_tracking_uri, which also exports MLFLOW_TRACKING_URI to os.environ:
    # keep both from leaking a deleted temp store into later tests
    previous = tracking_utils._tracking_uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    # anything MLflow writes to a default location (./mlruns) lands here, where a test can see it
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    shutil.copyfile(mlflow_template_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    registry = MlflowRegistry(
        client=client, tracking_uri=uri, experiment="contract", artifact_location=(tmp_path / "art").as_uri()
    )
    yield registry, client
    if mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.mark.integration
class TestMlflowRegistry(RegistryContract):
    @pytest.fixture
    def registry(self, mlflow_store: tuple[Any, Any]) -> ModelRegistry:
        registry, self.client = mlflow_store
        return registry  # type: ignore[no-any-return]

    def crown(self, registry: ModelRegistry, name: str, version: str) -> None:
        self.client.set_registered_model_alias(name, CHAMPION, version)


@pytest.mark.integration
class TestMlflowRunRecords:
    """What only MLflow keeps: the run behind a version, with params, metrics, tags and documents."""

    def test_version_run_holds_params_metrics_tags_and_documents(
        self, mlflow_store: tuple[Any, Any], model: nn.Module, holdout_x: np.ndarray, tmp_path: Path
    ) -> None:
        registry, client = mlflow_store
        v = registry.register(registration(model, holdout_x, key="key-1"))

        run = client.get_run(v.run_id)
        assert run.data.metrics == METRICS
        # params are flattened to strings; structured values as canonical JSON
        assert run.data.params == {
            "epochs": "2",
            "hidden": "[8, 4]",
            "lr": "0.01",
            "entrypoint": "pkg.mod:train",
        }
        for tag, value in TAGS.items():
            assert run.data.tags[tag] == value
        assert run.data.tags[Tag.RELEASE_KEY] == "key-1"
        assert "slipway.decision" not in run.data.tags

        # the registered version points at this run and the model files sit under the temp store
        mv = client.get_model_version(NAME, v.version)
        assert mv.run_id == v.run_id
        assert mv.tags[Tag.RELEASE_KEY] == "key-1"

        docs = sorted(a.path for a in client.list_artifacts(v.run_id, "slipway"))
        assert docs == sorted(DOCUMENTS)
        for doc in DOCUMENTS:
            path = client.download_artifacts(v.run_id, doc, str(tmp_path / "dl"))
            assert json.loads(Path(path).read_text()) == DOCUMENTS[doc]
        # every file went under the configured artifact location, none to a default ./mlruns
        assert any((tmp_path / "art").rglob("MLmodel"))
        assert not (tmp_path / "cwd" / "mlruns").exists()

    def test_rejection_run_is_tagged_with_stage_and_creates_no_model(
        self, mlflow_store: tuple[Any, Any], model: nn.Module, holdout_x: np.ndarray
    ) -> None:
        registry, client = mlflow_store
        run_id = registry.record_rejection(registration(model, holdout_x, key="rej"), stage="quality_gate")
        run = client.get_run(run_id)
        assert run.data.tags["slipway.decision"] == "rejected"
        assert run.data.tags["slipway.rejected_at"] == "quality_gate"
        assert run.data.tags[Tag.RELEASE_KEY] == "rej"
        assert run.data.metrics == METRICS
        assert sorted(a.path for a in client.list_artifacts(run_id, "slipway")) == sorted(DOCUMENTS)
        assert client.search_model_versions(f"name='{NAME}'") == []
        assert client.search_registered_models() == []

    def test_models_load_by_their_flavor_and_an_unsupported_flavor_is_a_contract_error(
        self, mlflow_store: tuple[Any, Any], tmp_path: Path
    ) -> None:
        # `--model-uri` may point at anything logged to MLflow: pytorch, sklearn and onnx models load
        import mlflow
        from sklearn.linear_model import LogisticRegression

        class Constant(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
            def predict(self, context: Any, model_input: Any) -> Any:
                return np.zeros(len(model_input))

        registry, client = mlflow_store
        x = np.random.default_rng(0).normal(size=(20, 30))
        experiment = client.create_experiment("other", artifact_location=(tmp_path / "other").as_uri())
        mlflow.set_tracking_uri(client.tracking_uri)  # the fixture restores the global URI afterwards
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.sklearn.log_model(
                LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)),
                name="model",
                serialization_format="pickle",
                pip_requirements=["scikit-learn"],
            )
            mlflow.pyfunc.log_model(name="constant", python_model=Constant(), pip_requirements=["numpy"])
        loaded = registry.load_model(uri=f"runs:/{run.info.run_id}/model")
        assert isinstance(loaded, LogisticRegression) and loaded.predict(x).shape == (20,)
        uri = f"runs:/{run.info.run_id}/constant"
        with pytest.raises(ModelContractError) as exc:
            registry.load_model(uri=uri)
        assert uri in str(exc.value)
        assert "python_function" in str(exc.value) and "'sklearn'" in str(exc.value)


@pytest.mark.integration
class TestSqliteVersionReader:
    """The read-only SQLite reader answers exactly what the MLflow backend answers, on a store MLflow wrote."""

    def test_reads_match_the_mlflow_backend(
        self, mlflow_store: tuple[Any, Any], model: nn.Module, holdout_x: np.ndarray, tmp_path: Path
    ) -> None:
        from slipway.registry.sqlite_reader import SqliteVersionReader, sqlite_path

        registry, client = mlflow_store
        db = sqlite_path(client.tracking_uri)
        assert db is not None and db.is_file()
        reader = SqliteVersionReader(db_path=db, experiment="contract")
        assert reader.list_versions(model_name=NAME) == []
        assert reader.list_rejections(model_name=NAME) == []
        assert reader.get_alias(model_name=NAME, alias=CHAMPION) is None

        for key in ("key-1", "key-2", "key-3"):
            registry.register(registration(model, holdout_x, key=key))
        registry.promote(model_name=NAME, version="1", reason="first")
        registry.promote(model_name=NAME, version="2", reason="second")
        registry.reject(model_name=NAME, version="3", stage="canary", reason="nan")
        registry.describe(model_name=NAME, version="2", description="**promoted** at stage `canary`")
        registry.register(registration(model, holdout_x, key="other", name="other-model"))
        gate = registration(None, holdout_x, key="rej-1")
        gate.documents["slipway/quality_gate.json"] = {
            "reasons": ["FAIL: accuracy 0.5 >= floor 0.9", "gate rejected"]
        }
        registry.record_rejection(gate, stage="quality_gate")
        registry.record_rejection(registration(None, holdout_x, key="rej-2"), stage="parity")
        registry.record_rejection(
            registration(None, holdout_x, key="rej-3", name="other-model"), stage="parity"
        )

        assert reader.list_versions(model_name=NAME) == registry.list_versions(model_name=NAME)
        rejections = reader.list_rejections(model_name=NAME)
        assert rejections == registry.list_rejections(model_name=NAME)
        assert [r.stage for r in rejections] == ["parity", "quality_gate"]
        assert [r.stage for r in reader.list_rejections(model_name="other-model")] == ["parity"]
        for version in ("1", "2", "3"):
            assert reader.get_version(model_name=NAME, version=version) == registry.get_version(
                model_name=NAME, version=version
            )
        for alias in (CHAMPION, CHALLENGER, "no-such-alias"):
            assert reader.get_alias(model_name=NAME, alias=alias) == registry.get_alias(
                model_name=NAME, alias=alias
            )
        for version in ("9", "x"):
            with pytest.raises(RegistryError) as exc:
                reader.get_version(model_name=NAME, version=version)
            assert f"{NAME}/{version}" in str(exc.value)
        assert reader.list_versions(model_name="no-such-model") == []

    def test_a_store_it_does_not_know_is_a_registry_error(self, tmp_path: Path) -> None:
        import sqlite3

        from slipway.registry.sqlite_reader import SqliteVersionReader

        with pytest.raises(RegistryError, match="does not exist"):
            SqliteVersionReader(db_path=tmp_path / "missing.db", experiment="x").list_versions(
                model_name=NAME
            )
        odd = tmp_path / "odd.db"
        con = sqlite3.connect(odd)
        con.execute("CREATE TABLE model_versions (name TEXT, version INTEGER)")
        con.commit()
        con.close()
        with pytest.raises(RegistryError, match="schema not recognised"):
            SqliteVersionReader(db_path=odd, experiment="x").get_version(model_name=NAME, version="1")
