"""The release's running record: what each stage concluded, the evidence later stages read, and the
one place that turns outcomes into a `ReleaseResult` and into registry writes.

Rules (`Ledger.decision`), in order:
1. A stage that raised, or whose verdict is `error`, makes the release `error` at that stage.
2. A `rejected` verdict ends the release there: `rolled_back` at the canary, `rejected` anywhere else.
3. Otherwise a passed canary is `promoted` (stage `canary`); without one the release is `registered`
   (stage `register`).

Registry writes on the way out (`conclude`), so that a failed release leaves the registry consistent
(and, first, the tags of every stage after registration go onto the version):
* rejected before a version exists, with a trained model: the attempt is logged as an MLflow run
  tagged rejected (no version is created);
* rejected after registration (the image smoke test, the canary): the version is tagged rejected at
  that stage; `champion` never moves;
* an error after registration: the version is tagged with the error and its stage;
* registered (no canary): the version is tagged with that decision, so every version a release
  finished carries `slipway.decision`; one without it under a lease nobody holds was interrupted
  (`slipway.release.interrupted` marks it at the next release);
* a validation rejection or an error before training touches nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from slipway.evaluation.scoring import class_output
from slipway.names import TAG_VALUE_LIMIT, Decision, Stage, Tag
from slipway.release.outcome import StageOutcome
from slipway.release.result import ReleaseResult, ResultPatch

if TYPE_CHECKING:
    from slipway.gate.quality import GateDecision
    from slipway.optimize.stage import OptimizationOutcome
    from slipway.registry.base import ModelRegistry, Registration, VersionInfo
    from slipway.release.canary_stage import DeployOutcome
    from slipway.release.context import ReleaseContext
    from slipway.release.packaging import ImageOutcome
    from slipway.serving.servability import ServabilityReport
    from slipway.training.base import TrainedModel
    from slipway.validation.base import ValidationReport

T = TypeVar("T")

UNTOUCHED = "the champion is untouched; nothing was registered"


@dataclass(frozen=True)
class GateEvidence:
    """The quality gate's inputs and verdict: the challenger's holdout metrics and the decision."""

    metrics: dict[str, float]
    decision: GateDecision


@dataclass(frozen=True)
class Evidence:
    """What earlier stages produced, for later ones. Each field is set by the stage named beside it."""

    validation: ValidationReport | None = None  # validation
    trained: TrainedModel | None = None  # training
    gate: GateEvidence | None = None  # quality_gate
    optimization: OptimizationOutcome | None = None  # export, parity, optimize
    servability: ServabilityReport | None = None  # servability
    version: VersionInfo | None = None  # register
    image: ImageOutcome | None = None  # image
    deploy: DeployOutcome | None = None  # canary
    tags: dict[str, str] = field(default_factory=dict)  # every outcome's tags, for the MLflow run
    documents: dict[str, Any] = field(default_factory=dict)  # every outcome's documents
    files: dict[str, Path] = field(default_factory=dict)  # every outcome's files (artifact path -> local)


_FIELD_OF_STAGE: dict[str, str] = {
    "validation": "validation",
    "training": "trained",
    "quality_gate": "gate",
    "export": "optimization",
    "parity": "optimization",
    "optimize": "optimization",
    "servability": "servability",
    "register": "version",
    "image": "image",
    "canary": "deploy",
}


def required(value: T | None, *, what: str) -> T:
    """Pure; `value`, or RuntimeError naming the stage that should have produced it (a wiring bug)."""
    if value is None:
        raise RuntimeError(f"the release reached a stage that needs {what}, which no earlier stage produced")
    return value


@dataclass(frozen=True)
class Failure:
    """A stage that raised instead of returning an outcome."""

    stage: Stage
    message: str


class Ledger:
    """Outcomes in the order the stages ran, the evidence they left, and the release's result."""

    def __init__(self) -> None:
        self.outcomes: list[StageOutcome[Any]] = []
        self.evidence = Evidence()
        self.failure: Failure | None = None
        self.timings_s: dict[str, float] = {}
        self.cached: list[str] = []
        self.base = ReleaseResult(decision="error", stage="prepare")
        self.extra_reasons: list[str] = []
        self.late_tags: dict[str, str] = {}  # tags of outcomes recorded after registration (for the version)

    def begin(self, ctx: ReleaseContext) -> None:
        """Records the prepared inputs (model name, batch, commit, config snapshot hash)."""
        self.base = self.base.model_copy(
            update={
                "model_name": ctx.model_name,
                "data_path": ctx.data_path,
                "commit": ctx.commit,
                "config_sha256": ctx.config_sha256,
            }
        )

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        """Adds the block's wall seconds to `timings_s[name]`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_s[name] = round(self.timings_s.get(name, 0.0) + time.perf_counter() - start, 3)

    def record(self, outcome: StageOutcome[Any], *, name: str | None = None) -> bool:
        """Keeps the outcome and its evidence; True when the release goes on, False when it stops here."""
        self.outcomes.append(outcome)
        if outcome.cached:
            self.cached.append(name or outcome.stage)
        ev = self.evidence
        if ev.version is not None:
            self.late_tags |= dict(outcome.tags)
        updates: dict[str, Any] = {
            "tags": {**ev.tags, **outcome.tags},
            "documents": {**ev.documents, **outcome.documents},
            "files": {**ev.files, **outcome.files},
        }
        slot = _FIELD_OF_STAGE.get(outcome.stage)
        if slot is not None and outcome.value is not None:
            updates[slot] = outcome.value
        self.evidence = replace(ev, **updates)
        return not outcome.stops

    def fail(self, stage: Stage, exc: BaseException) -> None:
        """Records that `stage` raised: the release ends as an error there, the message kept."""
        self.failure = Failure(
            stage=stage, message=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        )

    def apply(self, patch: ResultPatch) -> None:
        """Sets result fields that come from outside the stages (what the conclusion wrote)."""
        self.base = self.base.patched(patch)

    def note(self, reason: str) -> None:
        """Adds a reason line after the stages' own (e.g. what the conclusion wrote to the registry)."""
        self.extra_reasons.append(reason)

    def decision(self) -> tuple[Decision, Stage]:
        """Pure over the record; the release's decision and the stage it was made at (module rules 1-3)."""
        if self.failure is not None:
            return "error", self.failure.stage
        last = self.outcomes[-1] if self.outcomes else None
        if last is not None and last.verdict == "error":
            return "error", last.stage
        if last is not None and last.verdict == "rejected":
            return ("rolled_back" if last.stage == "canary" else "rejected"), last.stage
        if any(o.stage == "canary" and o.verdict == "passed" for o in self.outcomes):
            return "promoted", "canary"
        if self.evidence.version is not None:
            return "registered", "register"
        return "error", last.stage if last is not None else "prepare"

    def reasons(self) -> list[str]:
        """Pure over the record; every stage's reason lines, then the failure and the closing lines."""
        lines = [r for o in self.outcomes for r in o.reasons]
        if self.failure is not None:
            lines.append(f"ERROR at stage {self.failure.stage}: {self.failure.message}")
        decision, _ = self.decision()
        if decision in ("rejected", "error") and self.evidence.version is None:
            lines.append(UNTOUCHED)
        return lines + self.extra_reasons

    def result(self, *, flow_run_id: str | None = None) -> ReleaseResult:
        """Pure over the record; the ReleaseResult built from the outcomes' typed patches."""
        decision, stage = self.decision()
        result = self.base
        for outcome in self.outcomes:
            result = result.patched(outcome.patch)
        return result.model_copy(
            update={
                "decision": decision,
                "stage": stage,
                "reasons": self.reasons(),
                "timings_s": dict(self.timings_s),
                "cached": list(self.cached),
                "flow_run_id": flow_run_id,
            }
        )


def model_output(ctx: ReleaseContext, evidence: Evidence) -> Literal["logits", "probabilities"]:
    """Pure; what the challenger's ONNX graph answers: its adapter's word (training stage), else `training.output`."""
    said = evidence.trained.output if evidence.trained is not None else None
    return class_output(said, fallback=ctx.config.training.output)


def draft_registration(ctx: ReleaseContext, evidence: Evidence) -> Registration:
    """Pure over its inputs; what registration (or a rejected attempt's run) writes: model, params, metrics, tags, documents, files."""
    from slipway.registry.base import Registration

    trained = required(evidence.trained, what="a trained model")
    gate = evidence.gate
    x, _ = ctx.reference().holdout_xy()
    return Registration(
        model_name=ctx.model_name,
        module=trained.module,
        input_example=x[:2],
        params={
            **trained.params,
            "seed": ctx.config.training.seed,
            "entrypoint": ctx.config.training.entrypoint,
        },
        metrics={**({f"holdout_{k}": v for k, v in gate.metrics.items()} if gate else {}), **trained.metrics},
        tags={
            **evidence.tags,
            Tag.CONFIG_SHA256: ctx.config_sha256,
            Tag.TRIGGER: ctx.trigger,
            **ctx.feature_tags,
            **({Tag.RELEASE_LEASE: ctx.lease_key} if ctx.lease_key else {}),
        },
        release_key=ctx.release_key(),
        documents=dict(evidence.documents),
        artifacts=dict(evidence.files),
    )


def conclude(
    ctx: ReleaseContext,
    ledger: Ledger,
    *,
    registry: ModelRegistry,
    flow_run_id: str | None = None,
    run_url: str | None = None,
) -> ResultPatch:
    """Blocking (registry writes); the registry writes of the module docstring, then the evidence (see
    `record_evidence`); the patch they add to the result."""
    patch = _decide_in_registry(ctx, ledger, registry=registry)
    try:
        links = record_evidence(
            ledger, registry=registry, run_id=patch.mlflow_run_id, flow_run_id=flow_run_id, run_url=run_url
        )
    except Exception as exc:  # the decision stands; only its evidence is incomplete
        ledger.note(f"evidence: not all reports reached the registry ({type(exc).__name__}: {exc})")
        return patch
    return ResultPatch(**patch.fields(), links=links)


def record_evidence(
    ledger: Ledger,
    *,
    registry: ModelRegistry,
    run_id: str | None,
    flow_run_id: str | None,
    run_url: str | None,
) -> dict[str, str]:
    """Blocking (registry writes); the release record onto the version's run, the version's description
    (decision, why, links); the evidence links (`slipway.release.evidence`)."""
    from slipway.release import evidence as ev_files

    ev = ledger.evidence
    version = ev.version
    run_id = version.run_id if version is not None else run_id
    files = set(ev.files) | set(ev.documents)
    if ev.deploy is not None and ev.deploy.canary:
        files |= {ev_files.CANARY_PLOT, ev_files.CANARY_REPORT, ev_files.CANARY_DATA}
    if version is not None:
        files.add(ev_files.RELEASE_RECORD)
    local = {}
    if ev.validation is not None and ev.validation.data_docs:  # the MLflow copy's link wins when there is one
        local["Data Docs"] = ev.validation.data_docs.removeprefix("file://")
    links = ev_files.evidence_links(
        run=registry.run_links(run_id=run_id) if run_id else None,
        run_files=files,
        model_name=version.name if version else None,
        version=version.version if version else None,
        prefect_run_url=run_url,
        local=local,
    )
    if version is not None:
        decision, stage = ledger.decision()
        record = ledger.result(flow_run_id=flow_run_id).model_copy(update={"links": links})
        registry.annotate(
            model_name=version.name,
            version=version.version,
            tags={},
            documents={ev_files.RELEASE_RECORD: record.as_json_dict()},
        )
        registry.describe(
            model_name=version.name,
            version=version.version,
            description=ev_files.version_description(
                decision=decision, stage=stage, why=record.why(), links=links
            ),
        )
    return links


def _decide_in_registry(ctx: ReleaseContext, ledger: Ledger, *, registry: ModelRegistry) -> ResultPatch:
    decision, stage = ledger.decision()
    ev = ledger.evidence
    if ev.version is not None and ledger.late_tags:  # what later stages concluded, on the version too
        registry.annotate(
            model_name=ev.version.name, version=ev.version.version, tags=dict(ledger.late_tags), documents={}
        )
    reason = "; ".join(r for r in ledger.reasons() if r.startswith(("FAIL", "ERROR")))[:TAG_VALUE_LIMIT]
    if decision in ("rejected", "rolled_back") and ev.version is None and ev.trained is not None:
        run_id = registry.record_rejection(draft_registration(ctx, ev), stage=stage)
        return ResultPatch(mlflow_run_id=run_id)
    if decision in ("rejected", "rolled_back") and ev.version is not None:
        last = ledger.outcomes[-1]
        registry.reject(
            model_name=ev.version.name,
            version=ev.version.version,
            stage=stage,
            reason=(last.cause or reason or f"rejected at stage {stage}")[:TAG_VALUE_LIMIT],
        )
        ledger.note(
            f"version {ev.version.version} tagged rejected at stage {stage}; the champion is unchanged"
        )
    elif decision == "error" and ev.version is not None:
        registry.annotate(
            model_name=ev.version.name,
            version=ev.version.version,
            tags={
                Tag.DECISION: "error",
                Tag.ERROR_AT: stage,
                Tag.ERROR_REASON: _error_cause(ledger) or f"error at stage {stage}",
            },
            documents={},
        )
        ledger.note(
            f"the champion is untouched; version {ev.version.version} stays a challenger (error at {stage})"
        )
    elif decision == "registered" and ev.version is not None:  # every version carries its release's decision
        registry.annotate(
            model_name=ev.version.name,
            version=ev.version.version,
            tags={Tag.DECISION: decision},
            documents={},
        )
    return ResultPatch()


def _error_cause(ledger: Ledger) -> str:
    if ledger.failure is not None:
        return ledger.failure.message[:TAG_VALUE_LIMIT]
    last = ledger.outcomes[-1] if ledger.outcomes else None
    return (last.cause if last is not None else "")[:TAG_VALUE_LIMIT]
