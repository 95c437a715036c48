"""Stage logic of the release, one function per stage; each is plain Python, testable without Prefect."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from slipway.config import PipelineConfig, load_config
from slipway.data.batch_io import read_batch
from slipway.data.reference import Reference, load_reference
from slipway.evaluation.scoring import evaluate
from slipway.gate.quality import GateDecision, decide
from slipway.hashing import file_sha256
from slipway.lineage.collect import check_commit, git_state, json_hash, lineage_tags
from slipway.names import CHAMPION, Tag
from slipway.optimize.stage import OptimizationOutcome
from slipway.registry.base import ModelRegistry, Registration, VersionInfo
from slipway.settings import Settings
from slipway.training.base import TrainedModel, TrainingRequest
from slipway.training.entrypoint import code_hash, load_entrypoint
from slipway.validation.base import DataValidator, ValidationReport
from slipway.validation.suite import SuiteSpec, load_suite, suite_hash


@dataclass(frozen=True)
class ReleaseInputs:
    """Everything a release depends on, identified by content hash before any stage runs."""

    config_path: str
    data_path: str
    model_uri: str | None
    data_sha256: str
    suite_sha256: str
    suite_version: int
    training_config_sha256: str
    training_code_sha256: str | None
    git: dict[str, str]

    def config(self) -> PipelineConfig:
        """The validated pipeline config."""
        return load_config(Path(self.config_path))

    def suite(self) -> SuiteSpec:
        """The expectation suite the config names."""
        return load_suite(self.config().suite_path())


def prepare(
    *, config_path: Path, data_path: Path, model_uri: str | None, commit: str | None = None
) -> ReleaseInputs:
    """Load config, suite and entrypoint and hash the inputs; UsageError on anything missing or invalid.

    `commit` (the pushed SHA that triggered the release) must be the checkout's commit when git knows it.
    """
    cfg = load_config(config_path)
    suite = load_suite(cfg.suite_path())
    read_batch(data_path)  # fail early, with the reader's message, on an unreadable batch
    code_sha = None if model_uri else code_hash(cfg.training.entrypoint)
    return ReleaseInputs(
        config_path=str(config_path.resolve()),
        data_path=str(data_path.resolve()),
        model_uri=model_uri,
        data_sha256=file_sha256(data_path),
        suite_sha256=suite_hash(suite),
        suite_version=suite.version,
        training_config_sha256=cfg.training_hash(),
        training_code_sha256=code_sha,
        git=check_commit(_code_git(cfg.base_dir), requested=commit),
    )


def _code_git(config_dir: Path) -> dict[str, str]:
    """The git state of the config's checkout, else of the working directory (a worker's checkout)."""
    state = git_state(config_dir)
    return state if state["commit"] != "unknown" else git_state(Path.cwd())


def resolve_batch(*, config_path: Path, data: str | None) -> Path:
    """Blocking (downloads a URL); the local batch file: `data`, or the newest batch(es) in `batches.location`."""
    from slipway.data.source import resolve_data

    cfg = load_config(config_path)
    return resolve_data(data, folder=cfg.batches_path(), cfg=cfg.batches, work_dir=Settings().work_path())


def validate_batch(inputs: ReleaseInputs, *, validator: DataValidator, run_name: str) -> ValidationReport:
    """Validate the batch file against the configured suite."""
    frame = read_batch(Path(inputs.data_path))
    return validator.validate(frame, suite=inputs.suite(), suite_hash=inputs.suite_sha256, run_name=run_name)


def train_model(inputs: ReleaseInputs) -> TrainedModel:
    """Train with the configured entrypoint on the (validated) batch."""
    cfg = inputs.config()
    ref = load_reference(cfg.data)
    train = load_entrypoint(cfg.training.entrypoint)
    request = TrainingRequest(
        frame=read_batch(Path(inputs.data_path)),
        features=ref.features,
        label=ref.label,
        params=dict(cfg.training.params),
        seed=cfg.training.seed,
    )
    return train(request)


def import_model(uri: str, *, registry: ModelRegistry) -> TrainedModel:
    """Accept a model trained elsewhere (an MLflow model URI); ModelContractError if unusable."""
    return TrainedModel(module=registry.load_model(uri=uri), params={"source_model_uri": uri})


def holdout_metrics(module: object, *, ref: Reference) -> dict[str, float]:
    """Every metric of a module on the fixed holdout."""
    x, y = ref.holdout_xy()
    return evaluate(module, x=x, y=y)


def champion_metrics(
    *, registry: ModelRegistry, cfg: PipelineConfig, ref: Reference
) -> tuple[VersionInfo, dict[str, float]] | None:
    """The current champion and its metrics on the same holdout; None on a first release."""
    champion = registry.get_alias(model_name=cfg.registry.model_name, alias=CHAMPION)
    if champion is None:
        return None
    module = registry.load_model(uri=champion.uri)
    return champion, holdout_metrics(module, ref=ref)


def quality_gate(
    *, metrics: dict[str, float], champion: tuple[VersionInfo, dict[str, float]] | None, cfg: PipelineConfig
) -> GateDecision:
    """The gate decision for these metrics against the configured limits and the champion."""
    return decide(
        challenger=metrics,
        champion=champion[1] if champion else None,
        champion_version=champion[0].version if champion else None,
        cfg=cfg.quality_gate,
    )


def release_key(inputs: ReleaseInputs) -> str:
    """Identity of a release: the same data, suite, code, config and model source give the same key."""
    return json_hash(
        {
            "data": inputs.data_sha256,
            "suite": inputs.suite_sha256,
            "training_config": inputs.training_config_sha256,
            "training_code": inputs.training_code_sha256,
            "model_uri": inputs.model_uri,
        }
    )


def build_registration(
    inputs: ReleaseInputs,
    *,
    trained: TrainedModel,
    metrics: dict[str, float],
    gate: GateDecision,
    validation: ValidationReport,
    ref: Reference,
) -> Registration:
    """Everything registration writes: model, params, holdout metrics, lineage tags, decision documents."""
    cfg = inputs.config()
    tags = lineage_tags(
        git=inputs.git,
        data_sha256=inputs.data_sha256,
        suite_sha256=inputs.suite_sha256,
        suite_version=inputs.suite_version,
        training_config_sha256=inputs.training_config_sha256,
        training_code_sha256=inputs.training_code_sha256,
        holdout_sha256=ref.holdout_hash(),
        source=inputs.model_uri or f"trained:{cfg.training.entrypoint}",
    )
    tags[Tag.QUALITY_GATE] = "passed" if gate.passed else "rejected"
    tags[Tag.CHAMPION_COMPARED] = gate.champion_version or "none (first release)"
    x, _ = ref.holdout_xy()
    return Registration(
        model_name=cfg.registry.model_name,
        module=trained.module,
        input_example=x[:2],
        params={**trained.params, "seed": cfg.training.seed, "entrypoint": cfg.training.entrypoint},
        metrics={**{f"holdout_{k}": v for k, v in metrics.items()}, **trained.metrics},
        tags=tags,
        release_key=release_key(inputs),
        documents={
            "slipway/quality_gate.json": gate.model_dump(mode="json"),
            "slipway/validation.json": validation.model_dump(mode="json"),
        },
    )


def attach_optimization(reg: Registration, outcome: OptimizationOutcome) -> Registration:
    """The registration plus ONNX files (with sha256 tags), parity numbers and the decision table."""
    return replace(
        reg,
        tags={**reg.tags, **outcome.tags()},
        metrics={**reg.metrics, **outcome.metrics()},
        artifacts={**reg.artifacts, **{k: Path(v) for k, v in outcome.artifacts.items()}},
        documents={**reg.documents, "slipway/optimization.json": outcome.model_dump(mode="json")},
    )


def with_documents(reg: Registration, documents: dict[str, Any]) -> Registration:
    """The registration with extra JSON documents for its run."""
    return replace(reg, documents={**reg.documents, **documents})


def settings_for(home: str | None = None) -> Settings:
    """Settings from the environment, optionally with another state folder."""
    return Settings() if home is None else Settings(home=Path(home))
