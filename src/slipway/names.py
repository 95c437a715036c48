"""The names Slipway writes where people and other tools read them: every `slipway.*` tag key, the
release's stage, decision and verdict names, and the registry aliases. Nothing else spells them.

Tag keys live on MLflow model versions (and on the runs of rejected attempts); `slipway why`,
`status`, `history`, `rollback` and the retrain plan read them back, so renaming one is a migration.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# --------------------------------------------------------------------------- release vocabulary

Stage = Literal[
    "prepare",
    "validation",
    "feature_consistency",
    "training",
    "quality_gate",
    "export",
    "parity",
    "optimize",
    "servability",
    "register",
    "tensorrt",
    "image",
    "canary",
]
"""Every stage a release can stop at, in pipeline order (`export`/`parity` are the optimize stage's gates)."""

STAGES: Final[tuple[Stage, ...]] = get_args(Stage)

Verdict = Literal["passed", "rejected", "error", "skipped"]
"""What one stage concluded: rejected and error stop the release; passed and skipped let it go on."""

Task = Literal["binary", "multiclass", "regression"]
"""What a model predicts: one of two classes, one of several, or a number (`data.task`)."""

TASKS: Final[tuple[Task, ...]] = get_args(Task)

Framework = Literal["pytorch", "sklearn", "onnx"]
"""The ML framework a model comes from (`training.framework`; see `slipway.frameworks`)."""

FRAMEWORKS: Final[tuple[Framework, ...]] = get_args(Framework)

FrameworkChoice = Literal["auto", "pytorch", "sklearn", "onnx"]
"""`training.framework`: one framework, or auto (told by the model itself)."""

Decision = Literal["registered", "rejected", "promoted", "rolled_back", "error"]
"""What a whole release ended in (the CLI's exit code follows it: see `exit_code`)."""

DECISIONS: Final[tuple[Decision, ...]] = get_args(Decision)


def exit_code(decision: str) -> int:
    """Pure; the CLI contract: 0 registered/promoted, 1 rejected by a gate or rolled back, 2 error (or unknown)."""
    return {"registered": 0, "promoted": 0, "rejected": 1, "rolled_back": 1}.get(decision, 2)


# --------------------------------------------------------------------------- registry aliases

CHALLENGER: Final = "challenger"
CHAMPION: Final = "champion"

# --------------------------------------------------------------------------- tag keys


class Tag:
    """Every `slipway.*` tag key (model versions, and the runs of rejected attempts)."""

    # lineage: where a version came from
    GIT_COMMIT: Final = "slipway.git_commit"
    GIT_DIRTY: Final = "slipway.git_dirty"
    REQUESTED_COMMIT: Final = "slipway.requested_commit"
    DATA_SHA256: Final = "slipway.data_sha256"
    SUITE_SHA256: Final = "slipway.suite_sha256"
    SUITE_VERSION: Final = "slipway.suite_version"
    TRAINING_CONFIG_SHA256: Final = "slipway.training_config_sha256"
    TRAINING_CODE_SHA256: Final = "slipway.training_code_sha256"
    CONFIG_SHA256: Final = "slipway.config_sha256"
    HOLDOUT_SHA256: Final = "slipway.holdout_sha256"
    MODEL_SOURCE: Final = "slipway.model_source"
    RELEASE_KEY: Final = "slipway.release_key"
    RELEASE_LEASE: Final = (
        "slipway.release_lease"  # the environment's release lock the release held (its key)
    )
    VERSION_PREFIX: Final = "slipway.version."  # + python, torch, onnx, ... (package versions)
    MODEL_NAME: Final = "slipway.model_name"  # on rejected-attempt runs (they have no model version)
    MODEL_LOGGED: Final = "slipway.model_logged"  # "false: why" when the model flavour could not be logged
    FRAMEWORK: Final = "slipway.model.framework"  # pytorch, sklearn or onnx (its adapter)
    MODEL_CLASS: Final = (
        "slipway.model.class"  # what the model is, e.g. Pipeline(StandardScaler, LogisticRegression)
    )
    MODEL_OUTPUT: Final = (
        "slipway.model.output"  # logits, probabilities or values: what its ONNX graph answers
    )

    TRIGGER: Final = (
        "slipway.trigger"  # what started the release: push, schedule, drift:<report id>, manual, ...
    )

    # monitoring (on the champion's version)
    MONITOR_EPISODE: Final = (
        "slipway.monitor.episode"  # report id that opened the drift episode; "" = none open
    )
    MONITOR_LAST_REPORT: Final = "slipway.monitor.last_report"  # id and status of the newest monitor report
    MONITOR_RETRAIN_RUN: Final = (
        "slipway.monitor.retrain_run"  # flow run id of the retrain its episode started
    )

    # features (feature-store projects)
    FEATURE_SERVICE: Final = "slipway.features.service"  # the Feast feature service the model reads
    FEATURE_SERVICE_HASH: Final = (
        "slipway.features.service_sha256"  # its definition's hash (serving checks it)
    )
    FEATURE_VIEWS: Final = "slipway.features.views"  # JSON: feature view -> version hash
    FEATURE_CONSISTENCY: Final = "slipway.features.consistency"  # the feature_consistency gate's verdict

    # gates
    QUALITY_GATE: Final = "slipway.quality_gate"
    CHAMPION_COMPARED: Final = "slipway.champion_compared"

    # optimization
    ONNX_OPSET: Final = "slipway.onnx.opset"
    ONNX_SHA256: Final = "slipway.onnx.sha256"
    ONNX_PREFIX: Final = "slipway.onnx."  # + <candidate>.sha256
    PARITY: Final = "slipway.parity"
    PARITY_MAX_ABS_ERROR: Final = "slipway.parity.max_abs_error"
    PARITY_MAX_REL_ERROR: Final = "slipway.parity.max_rel_error"
    SHIPPED: Final = "slipway.optimize.shipped"
    SHIPPED_ARTIFACT: Final = "slipway.optimize.shipped_artifact"
    SHIPPED_SHA256: Final = "slipway.optimize.shipped_sha256"
    TENSORRT_PREFIX: Final = "slipway.tensorrt"  # .status, .reason, .<precision>.*
    TENSORRT_STATUS: Final = "slipway.tensorrt.status"

    # servability
    SERVABILITY: Final = "slipway.servability"  # how the shipped model was smoke-tested: image or in-process

    # image
    IMAGE_STATUS: Final = "slipway.image.status"
    IMAGE_REASON: Final = "slipway.image.reason"
    IMAGE_TAG: Final = "slipway.image.tag"
    IMAGE_ID: Final = "slipway.image.id"
    IMAGE_SIZE_MB: Final = "slipway.image.size_mb"
    IMAGE_BUILDER: Final = "slipway.image.builder"
    IMAGE_DIGEST: Final = "slipway.image.digest"
    IMAGE_REFERENCE: Final = "slipway.image.reference"

    # canary
    CANARY_PREFIX: Final = "slipway.canary."
    CANARY_RESULT: Final = "slipway.canary.result"
    CANARY_REASON: Final = "slipway.canary.reason"
    CANARY_PEAK_WEIGHT: Final = "slipway.canary.peak_weight"
    CANARY_DECISIONS: Final = "slipway.canary.decisions"
    CANARY_STABLE_VERSION: Final = "slipway.canary.stable_version"

    # the decision on a version (or attempt) and the champion's history
    DECISION: Final = "slipway.decision"
    REJECTED_AT: Final = "slipway.rejected_at"
    REJECTION_REASON: Final = "slipway.rejection_reason"
    ERROR_AT: Final = "slipway.error_at"
    ERROR_REASON: Final = "slipway.error_reason"
    INTERRUPTED: Final = (
        "slipway.interrupted"  # who found the version's release gone before its decision, when
    )
    PROMOTION_REASON: Final = "slipway.promotion_reason"
    PREVIOUS_CHAMPION: Final = "slipway.previous_champion"
    PROMOTED_AT: Final = "slipway.promoted_at"  # UTC ISO time of the version's first promotion
    CHAMPION_SINCE: Final = "slipway.champion_since"  # UTC ISO time `champion` last moved to the version
    CHAMPION_VIA: Final = "slipway.champion_via"  # "promotion" or "rollback"

    # audited rollbacks
    ROLLBACK_PREFIX: Final = "slipway.rollback."
    ROLLBACK_ID: Final = "slipway.rollback.id"
    ROLLBACK_FROM: Final = "slipway.rollback.from"
    ROLLBACK_TO: Final = "slipway.rollback.to"
    ROLLBACK_AT: Final = "slipway.rollback.at"
    ROLLBACK_BY: Final = "slipway.rollback.by"
    ROLLBACK_REASON: Final = "slipway.rollback.reason"


TAG_VALUE_LIMIT: Final = 500  # characters of free text (reasons) kept in one tag value


def all_tag_keys() -> frozenset[str]:
    """Pure; every fixed tag key above (prefixes excluded)."""
    return frozenset(
        v for k, v in vars(Tag).items() if k.isupper() and isinstance(v, str) and not k.endswith("_PREFIX")
    )
