"""A release's inputs, read ONCE: the frozen config snapshot, the suite, content hashes, git state.

`prepare` is the only place a release reads `slipway.yaml`; every stage gets the `ReleaseContext`
it returns, so an edit to the file during a long canary changes nothing in the running release.
Values computed while the release runs (the offline shift baseline, ...) travel in stage outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slipway.config import PipelineConfig, load_config
from slipway.data.batch_io import read_batch
from slipway.data.reference import Reference, load_reference
from slipway.errors import ConfigError, UsageError
from slipway.hashing import file_sha256
from slipway.lineage.collect import check_commit, git_state, json_hash
from slipway.settings import Settings
from slipway.training.entrypoint import code_hash, load_entrypoint
from slipway.training.params import check_params
from slipway.validation.suite import SuiteSpec, load_suite, suite_hash


@dataclass(frozen=True)
class ReleaseContext:
    """Everything a release depends on, identified by content hash before any stage runs."""

    config: PipelineConfig
    config_path: str
    config_sha256: str
    data_path: str
    data_sha256: str
    suite: SuiteSpec
    suite_sha256: str
    training_code_sha256: str | None
    model_uri: str | None
    git: dict[str, str]
    canary_fault: str | None = None
    lease_key: str | None = None  # the release lock this release holds (set once it holds it)
    recovered_canary: str | None = (
        None  # a killed release's canary this one rolled back when it took the lease
    )
    trigger: str = "local"  # what started it: push, schedule, drift:<report id>, manual, remote or local
    reference_file: str | None = (
        None  # a feature-store project's reference joined with its features (else None)
    )
    feature_tags: dict[str, str] = field(
        default_factory=dict
    )  # the feature service's lineage (feature-store projects)
    entity_columns: tuple[str, ...] = ()  # a feature-store project's join keys and event timestamp (kept)

    @property
    def training_config_sha256(self) -> str:
        """sha256 of the snapshot's training section."""
        return self.config.training_hash()

    @property
    def model_name(self) -> str:
        """The registered model's name."""
        return self.config.registry.model_name

    @property
    def commit(self) -> str:
        """The commit that triggered the release (the checkout's, when none was requested)."""
        return self.git.get("requested") or self.git["commit"]

    def reference(self) -> Reference:
        """Blocking (first call); the reference data and its fixed holdout (cached per config); a feature-store
        project's reference is its entity rows joined with their features (`reference_file`)."""
        data = self.config.data
        if self.reference_file is not None:
            data = data.model_copy(update={"reference": self.reference_file})
        return load_reference(
            data, base_dir=self.config.base_dir, work_dir=Settings().work_path(), keep=self.entity_columns
        )

    def release_key(self) -> str:
        """Identity of a release: the same data, suite, code, config and model source give the same key."""
        return json_hash(
            {
                "data": self.data_sha256,
                "suite": self.suite_sha256,
                "training_config": self.training_config_sha256,
                "training_code": self.training_code_sha256,
                "model_uri": self.model_uri,
            }
        )

    def work_dir(self, what: str, settings: Settings) -> Path:
        """Pure; a scratch folder for this release's `what` (not created)."""
        return settings.work_path() / f"{what}-{self.release_key()[:16]}"


def resolve_batch(*, config: PipelineConfig, data: str | None) -> Path:
    """Blocking (downloads a URL); the local batch file: `data`, or the newest batch(es) in `batches.location`."""
    from slipway.data.source import resolve_data

    return resolve_data(
        data, folder=config.batches_path(), cfg=config.batches, work_dir=Settings().work_path()
    )


def prepare(
    *,
    config_path: Path,
    data: str | None,
    model_uri: str | None,
    commit: str | None = None,
    canary_fault: str | None = None,
) -> ReleaseContext:
    """Blocking; reads config, suite, batch and entrypoint once and hashes them; UsageError naming what is wrong.

    `commit` (the pushed SHA that triggered the release) must be the checkout's commit when git knows it;
    `canary_fault` must be one of the server's fault kinds.
    """
    from slipway.serving.faults import fault_env

    config = load_config(config_path)
    model_uri = _model_uri(model_uri)
    fault_env(canary_fault)  # an unknown kind is a usage error before anything runs
    joined = _feature_store_inputs(config)
    data_cfg = config.data
    if joined is not None:
        data_cfg = data_cfg.model_copy(update={"reference": str(joined.reference)})
    keep = joined.entity_columns if joined is not None else ()
    ref = load_reference(data_cfg, base_dir=config.base_dir, work_dir=Settings().work_path(), keep=keep)
    problems = config.quality_gate.problems_for(ref.target.task)
    if problems:
        raise ConfigError(f"{config_path}: {'; '.join(problems)} ({ref.how})")
    if not model_uri:  # a typed entrypoint's params are checked before anything runs
        spec = config.training.entrypoint
        check_params(load_entrypoint(spec, project_dir=config.base_dir), config.training.params, spec=spec)
    suite = load_suite(config.suite_path())
    data_path = resolve_batch(config=config, data=data)
    read_batch(data_path)  # fail early, with the reader's message, on an unreadable batch
    if joined is not None:  # the batch carries entities: the store's features at their timestamps replace it
        data_path = joined.batch(data_path)
    return ReleaseContext(
        config=config,
        config_path=str(config_path.resolve()),
        config_sha256=json_hash(config.model_dump(mode="json")),
        data_path=str(data_path.resolve()),
        data_sha256=file_sha256(data_path),
        suite=suite,
        suite_sha256=suite_hash(suite),
        training_code_sha256=None
        if model_uri
        else code_hash(config.training.entrypoint, project_dir=config.base_dir),
        model_uri=model_uri,
        git=check_commit(_code_git(config.base_dir), requested=commit),
        canary_fault=canary_fault,
        reference_file=str(joined.reference) if joined is not None else None,
        feature_tags=joined.tags if joined is not None else {},
        entity_columns=keep,
    )


@dataclass(frozen=True)
class _Joined:
    """A feature-store project's inputs: the joined reference, how to join a batch, the service's lineage."""

    reference: Path
    batch: Callable[[Path], Path]
    tags: dict[str, str]
    entity_columns: tuple[str, ...]


def _feature_store_inputs(config: PipelineConfig) -> _Joined | None:
    """Blocking (Feast: apply, cached; historical joins, cached per content); None without a feature store."""
    from slipway.features.factory import make_feature_store
    from slipway.features.joined import entity_columns, joined_file, lineage_tags

    settings = Settings()
    store = make_feature_store(config, settings=settings)
    if store is None:
        return None
    work = settings.work_path()
    reference = joined_file(store, config.resolve(Path(config.data.reference)), work_dir=work)
    return _Joined(
        reference=reference,
        batch=lambda path: joined_file(store, path, work_dir=work),
        tags=lineage_tags(store, service=config.features.service or ""),
        entity_columns=entity_columns(store),
    )


def _model_uri(uri: str | None) -> str | None:
    """Pure-ish (stats paths); a local model path made absolute (a flow may run elsewhere); UsageError for a
    path that does not exist; MLflow URIs (runs:/, models:/, ...) as they are."""
    if not uri or ":/" in uri:
        return uri
    path = Path(uri).expanduser()
    if not path.exists():
        raise UsageError(
            f"--model-uri {uri!r}: no such file or folder (a model trained elsewhere is runs:/<run>/<path>, "
            "models:/<name>/<version>, an MLflow model folder or a .onnx file)"
        )
    return str(path.resolve())


def _code_git(config_dir: Path) -> dict[str, str]:
    """The git state of the config's checkout, else of the working directory (a worker's checkout)."""
    state = git_state(config_dir)
    return state if state["commit"] != "unknown" else git_state(Path.cwd())
