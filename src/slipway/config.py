"""The pipeline config (`slipway.yaml`), validated into typed models with errors naming the bad key."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slipway.errors import ConfigError
from slipway.names import FrameworkChoice, Task

_STRICT = ConfigDict(extra="forbid", frozen=True)


class DataConfig(BaseModel):
    """The reference dataset (schema, label, classes), the features the model reads, and the fixed holdout."""

    model_config = _STRICT
    reference: str = Field(
        default="sklearn:breast_cancer",
        description="Reference data: a CSV/Parquet file or a folder of them (relative to the config file), an "
        "http(s) URL, or `sklearn:<name>` for a bundled dataset (breast_cancer, iris, wine, diabetes).",
    )
    label_column: str = Field(default="target", description="Name of the label column.")
    features: list[str] | None = Field(
        default=None,
        description="Columns the model reads, in input order; unset: every column but the label (all numeric).",
    )
    task: Task | None = Field(
        default=None,
        description="binary, multiclass or regression; unset: inferred from the label column (and said so).",
    )
    positive_class: int | str | None = Field(
        default=None, description="Binary only: the class whose probability is the score (model column 1)."
    )
    holdout: Path | None = Field(
        default=None,
        description="A fixed holdout file (relative to the config); unset: a share of the reference is held out.",
    )
    holdout_fraction: float = Field(
        default=0.25, gt=0.0, lt=0.9, description="Share of the reference rows kept out as the holdout."
    )
    holdout_seed: int = Field(
        default=7, description="Seed of the holdout split (stratified for classification)."
    )

    @field_validator("features")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError("must list at least one column, each once")
        return value


class ValidationConfig(BaseModel):
    """Which expectation suite gates a batch."""

    model_config = _STRICT
    suite: Path = Field(
        default=Path("expectations/breast_cancer.json"),
        description="Expectation suite JSON, relative to the config file.",
    )


class TrainingConfig(BaseModel):
    """The training entrypoint (`module:function`) and its parameters."""

    model_config = _STRICT
    entrypoint: str = Field(
        default="slipway.examples.breast_cancer:train",
        description="`module:function` called as fn(request) -> TrainedModel.",
    )
    framework: FrameworkChoice = Field(
        default="auto",
        description="The framework of the model the entrypoint returns: pytorch, sklearn or onnx; auto: told by "
        "the model itself. A model of another framework is an error naming both. (A --model-uri model's "
        "framework is its MLflow flavor, or onnx for a .onnx file.)",
    )
    seed: int = Field(default=42, description="Seed passed to the entrypoint.")
    params: dict[str, Any] = Field(default_factory=dict, description="Free-form entrypoint parameters.")
    output: Literal["logits", "probabilities"] = Field(
        default="logits",
        description="Classification torch models (and ONNX graphs that do not say): whether they return logits (a "
        "softmax is applied) or probabilities (used as they are). scikit-learn classifiers always answer "
        "probabilities; regression models return values either way.",
    )

    @field_validator("entrypoint")
    @classmethod
    def _module_colon_function(cls, value: str) -> str:
        module, sep, func = value.partition(":")
        if not sep or not module or not func:
            raise ValueError(f"must look like 'package.module:function', got {value!r}")
        return value


class QualityGateConfig(BaseModel):
    """Absolute floors on the holdout, and the allowed regression against the champion."""

    model_config = _STRICT
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"accuracy": 0.9, "roc_auc": 0.95},
        description="Minimum value per metric on the holdout (metric name -> floor).",
    )
    max_regression: dict[str, float] = Field(
        default_factory=lambda: {"accuracy": 0.02, "roc_auc": 0.01},
        description="How far below the champion a metric may fall (absolute points as a fraction).",
    )

    @field_validator("thresholds", "max_regression")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        from slipway.evaluation.metrics import METRICS

        known = sorted({name for metrics in METRICS.values() for name in metrics})
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {known}")
        return value

    def problems_for(self, task: Task) -> list[str]:
        """Pure; the gate's metrics that `task` does not have, named with the task's own metrics."""
        from slipway.evaluation.metrics import METRICS

        own = sorted(METRICS[task])
        return [
            f"quality_gate.{section}.{name}: not a metric of a {task} task (its metrics: {', '.join(own)})"
            for section, limits in (("thresholds", self.thresholds), ("max_regression", self.max_regression))
            for name in sorted(limits)
            if name not in METRICS[task]
        ]


class RegistryConfig(BaseModel):
    """Where versions are registered."""

    model_config = _STRICT
    model_name: str = Field(default="breast-cancer-mlp", description="Registered model name.")
    experiment: str = Field(
        default="slipway-breast-cancer", description="MLflow experiment for release runs."
    )


CandidateName = Literal["fp32", "int8_dynamic", "int8_static_qdq", "int4_weight_only"]
Precision = Literal["fp16", "int8"]
PredictionSink = Literal["auto", "off", "file", "stdout"]


def _all_candidates() -> list[CandidateName]:
    return ["fp32", "int8_dynamic", "int8_static_qdq", "int4_weight_only"]


def _fp16_only() -> list[Precision]:
    return ["fp16"]


class ParityConfig(BaseModel):
    """How close ONNX Runtime FP32 must stay to PyTorch on the holdout (numpy.isclose semantics)."""

    model_config = _STRICT
    atol: float = Field(default=1e-4, gt=0, description="Absolute tolerance per output value.")
    rtol: float = Field(default=1e-3, ge=0, description="Relative tolerance per output value.")


class BenchConfig(BaseModel):
    """How candidates are timed: pinned threads, warm-up, interleaved rounds."""

    model_config = _STRICT
    threads: int = Field(
        default=1, ge=1, description="ORT intra-op threads (and torch threads) while timing."
    )
    batches: list[int] = Field(default_factory=lambda: [1, 32], description="Batch sizes timed.")
    warmup: int = Field(default=20, ge=0, description="Untimed calls per candidate and batch before timing.")
    rounds: int = Field(
        default=7, ge=1, description="Interleaved A/B rounds; candidate order shuffles per round."
    )
    iterations: int = Field(default=40, ge=1, description="Timed calls per candidate, batch and round.")
    load_repeats: int = Field(default=3, ge=1, description="Session creations timed per candidate (median).")

    @field_validator("batches")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(b < 1 for b in value):
            raise ValueError(f"must be a non-empty list of batch sizes >= 1, got {value}")
        return value


class TensorRTConfig(BaseModel):
    """TensorRT engines, built by the `optimize-gpu` deployment on a GPU work pool."""

    model_config = _STRICT
    deployment: str | None = Field(
        default=None,
        description="Prefect deployment `flow/deployment` to run on a GPU pool; unset = skipped (no GPU worker).",
    )
    precisions: list[Precision] = Field(
        default_factory=_fp16_only, description="Engine precisions to build (int8 calibrates)."
    )
    timeout_s: int = Field(default=1800, ge=60, description="How long the release waits for the GPU flow.")


class OptimizeConfig(BaseModel):
    """ONNX export, parity gate and CPU candidate selection."""

    model_config = _STRICT
    opset: int = Field(default=18, ge=13, le=23, description="ONNX opset the model is exported with.")
    parity: ParityConfig = Field(default_factory=ParityConfig, description="Parity gate tolerances.")
    candidates: list[CandidateName] = Field(
        default_factory=_all_candidates,
        description="Candidates built and measured; fp32 (ORT-optimized) is always included.",
    )
    calibration_rows: int = Field(
        default=256, ge=8, description="Training rows used to calibrate static INT8."
    )
    max_accuracy_drop_points: float = Field(
        default=1.0,
        ge=0,
        description="Classification: largest holdout accuracy drop vs FP32 (percentage points) a candidate may have.",
    )
    max_rmse_increase_percent: float = Field(
        default=1.0,
        ge=0,
        description="Regression: largest holdout rmse increase vs FP32 (percent of FP32's rmse) a candidate may have.",
    )
    min_quantized_speedup: float = Field(
        default=0.05,
        ge=0,
        description="A quantized candidate ships only if its p50 is at least this much faster than FP32 (0.05 = 5%).",
    )
    rank_batch: int = Field(default=1, ge=1, description="Batch size whose p50 latency ranks the candidates.")
    bench: BenchConfig = Field(default_factory=BenchConfig, description="Timing protocol.")
    tensorrt: TensorRTConfig = Field(default_factory=TensorRTConfig, description="GPU engines.")

    @field_validator("candidates")
    @classmethod
    def _fp32_first(cls, value: list[CandidateName]) -> list[CandidateName]:
        return ["fp32", *[c for c in dict.fromkeys(value) if c != "fp32"]]


class PredictionLogConfig(BaseModel):
    """Sampled prediction records (inputs, outputs, model version, time, request id) that monitoring reads."""

    model_config = _STRICT
    sink: PredictionSink = Field(
        default="auto",
        description="auto: file for the local target's server processes, stdout in containers (podman, "
        "Kubernetes pods: their log pipeline reads stdout); off; file (rotating JSONL at `path`, local "
        "processes only); stdout (one JSON line per record, `event` slipway.prediction).",
    )
    path: Path | None = Field(
        default=None,
        description="JSONL file of the file sink (relative to the config file); unset: "
        ".slipway/predictions/<registry.model_name>.jsonl beside the config file.",
    )
    sample_rate: float = Field(
        default=0.1, ge=0, le=1, description="Share of /predict requests whose record is written."
    )
    max_bytes: int = Field(
        default=10 << 20, ge=1024, description="File sink: rotate the file when it reaches this size."
    )
    backups: int = Field(
        default=5, ge=0, description="File sink: rotated files kept (<path>.1 is the newest)."
    )
    max_record_bytes: int = Field(
        default=64 << 10,
        ge=256,
        description="Largest record line; a larger request is logged without its inputs and outputs "
        "(`truncated`, with its row count).",
    )


class ServingConfig(BaseModel):
    """The servability check every release passes before its image is built, and how released servers run."""

    model_config = _STRICT
    servability_timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds the server may take to become ready and answer the holdout."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes per deployed arm (SLIPWAY_SERVE_WORKERS); /metrics sums them.",
    )
    prediction_log: PredictionLogConfig = Field(
        default_factory=PredictionLogConfig,
        description="Sampled prediction records of every deployed server, for monitoring (on by default).",
    )


class CanaryConfig(BaseModel):
    """The canary policy: phases, weights, evidence minimums, deadlines and check limits (all data)."""

    model_config = _STRICT
    shadow_intervals: int = Field(
        default=1,
        ge=0,
        description="Analysis windows of shadow traffic (weight 0, mirrored copies) before any live traffic; 0 = no shadow phase.",
    )
    shadow_percent: int = Field(
        default=50,
        ge=1,
        le=100,
        description="Share of the stable's requests mirrored to the canary in shadow.",
    )
    min_shadow_pairs: int = Field(
        default=50,
        ge=1,
        description="Paired (stable, canary) outputs the shadow phase needs before it can pass.",
    )
    steps: list[int] = Field(
        default_factory=lambda: [5, 25, 50, 100],
        description="Canary weights in percent, strictly increasing; reaching 100 is the promotion itself.",
    )
    interval_s: float = Field(
        default=10.0, gt=0, description="Analysis window in seconds: 10 for the local demo, 60 in production."
    )
    step_min_samples: int = Field(
        default=20, ge=1, description="Canary requests at a weight before the weight may be raised."
    )
    min_samples_per_arm: int = Field(
        default=3000,
        ge=1,
        description="Live requests per arm (all steps) before promotion; the error-rate test needs them.",
    )
    readiness_deadline_s: float = Field(
        default=60.0,
        gt=0,
        description="The canary must be Ready within this; else rollback (300 on Kubernetes).",
    )
    deadline_s: float = Field(
        default=900.0,
        gt=0,
        description="Total time from canary start to promotion; reaching it rolls back (a stuck canary is aborted).",
    )
    stale_limit: int = Field(
        default=3, ge=1, description="Consecutive stale or empty windows (metrics missing) that roll back."
    )
    alpha: float = Field(
        default=0.001, gt=0, lt=0.5, description="Significance of every statistical check, per window."
    )
    decisive_alpha: float = Field(
        default=1e-6,
        gt=0,
        lt=0.5,
        description="A statistical check failing with p below this rolls back at once, like a hard check.",
    )
    promotion_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Significance at the final promotion look (min samples reached): looser, every effect floor still applies.",
    )
    min_error_rate_delta: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="Canary minus stable error rate that must ALSO be exceeded to fail (0 vs 1 error is no failure).",
    )
    promotion_error_margin: float = Field(
        default=0.0075,
        ge=0,
        le=1,
        description="At the promotion look the canary's error rate must be shown (upper confidence bound) within "
        "this of the stable's; short of that evidence the canary holds for more samples instead of promoting.",
    )
    max_error_rate: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Absolute error rate: a significant canary above it fails hard; the stable above it = environment off, hold.",
    )
    max_p99_ratio: float = Field(
        default=1.5,
        gt=1,
        description="Canary/stable tail latency ratio (p99; 1-1/n below 100 samples) that fails.",
    )
    max_added_latency_ms: float = Field(
        default=10.0,
        ge=0,
        description="Added-latency budget in ms: a latency check fails only if the canary adds more than this "
        "(live: canary tail minus stable tail; shadow: the median of canary minus stable on the same requests).",
    )
    min_latency_exceedance: float = Field(
        default=0.1,
        ge=0.05,
        lt=1,
        description="Share of canary requests slower than the stable's p95 that a latency failure must ALSO reach "
        "(5% by chance; 0.1 = twice that): a loaded machine that stalls one process a little more than the other "
        "moves the p99 ratio, not a tenth of the requests.",
    )
    min_latency_samples: int = Field(
        default=5, ge=1, description="Canary requests at a weight before the latency check can judge."
    )
    max_nonfinite_rate: float = Field(
        default=0.0, ge=0, le=1, description="Canary NaN/Inf output rate allowed above the stable's."
    )
    max_invalid_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Canary schema-invalid output rate (outside [0, 1]) allowed above the stable's.",
    )
    max_missing_entity_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Feature-store models: canary missing-entity rate (entities looked up by key that the online "
        "store lacked) allowed above the stable's; a canary significantly above (exact test at alpha, stratified "
        "by window) by more than this fails.",
    )
    collapse_std_ratio: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Canary score std below this share of the stable's = collapsed/constant predictions.",
    )
    collapse_min_samples: int = Field(
        default=20, ge=2, description="Canary scores needed before the collapse check can judge."
    )
    shift_min_effect: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Two-sample KS distance D that a significant score shift must also exceed to fail.",
    )
    shift_min_samples: int = Field(
        default=100, ge=10, description="Scores per arm at a weight before the KS shift check can judge."
    )
    min_shadow_agreement: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Label agreement on paired shadow outputs; fails when significantly below.",
    )
    min_paired_shift: float = Field(
        default=0.02,
        gt=0,
        lt=1,
        description="Median paired score difference (canary - stable) that a significant shadow shift must exceed.",
    )
    max_share_deviation: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Relative gap between the canary's observed traffic share and its weight that fails (routing).",
    )
    failure_threshold: int = Field(
        default=2, ge=1, description="Consecutive windows with a failed statistical check that roll back."
    )
    hard_failure_threshold: int = Field(
        default=1,
        ge=1,
        description="Consecutive windows with a failed hard check (NaN, invalid, collapse, gross errors, not ready).",
    )

    @field_validator("steps")
    @classmethod
    def _increasing_weights(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= w <= 100 for w in value):
            raise ValueError(f"must be weights in 1..100, got {value}")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"must be strictly increasing, got {value}")
        if value[0] == 100:
            raise ValueError("needs at least one weight below 100 (100 is the promotion)")
        return value

    @model_validator(mode="after")
    def _deadlines_fit(self) -> CanaryConfig:
        if self.deadline_s < self.readiness_deadline_s + self.interval_s:
            raise ValueError("deadline_s must be at least readiness_deadline_s + interval_s")
        return self


class KubernetesDeployConfig(BaseModel):
    """The kubernetes target: where its Deployments go, how many pods split the traffic, how to reach the API."""

    model_config = _STRICT
    namespace: str = Field(
        default="slipway",
        description="Namespace of the Deployments, Service and HPA (infra/k8s/rbac.yaml's).",
    )
    app: str = Field(
        default="slipway-serve", description="Service name; Deployments are <app>-stable and <app>-canary."
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig file (relative to the config file); unset: $KUBECONFIG or ~/.kube/config, "
        "else the in-cluster ServiceAccount.",
    )
    context: str | None = Field(default=None, description="Kubeconfig context; unset: its current context.")
    replicas: int = Field(
        default=10,
        ge=2,
        description="Pods of both arms together; traffic follows the replica ratio, so every canary.steps "
        "weight must be a multiple of 100/replicas (10 pods: 10, 20, ... 100).",
    )
    max_replicas: int | None = Field(
        default=None, ge=2, description="The stable's HPA ceiling; unset: 3 x replicas."
    )
    requests_per_pod: float | None = Field(
        default=20.0,
        gt=0,
        description="The stable's HPA target: average requests/s per stable pod (custom metric "
        "slipway_requests_per_second, e.g. from Prometheus Adapter: see the README); null: not on the rate.",
    )
    cpu_utilization: int | None = Field(
        default=70,
        gt=0,
        description="The stable's HPA CPU target, percent of the pod's CPU request (metrics-server); null: not on CPU.",
    )

    @model_validator(mode="after")
    def _hpa_has_a_metric(self) -> KubernetesDeployConfig:
        if self.requests_per_pod is None and self.cpu_utilization is None:
            raise ValueError("requests_per_pod and cpu_utilization are both null: the HPA needs one of them")
        return self

    rollout_timeout_s: float = Field(
        default=300.0, gt=0, description="How long a promotion or rollback may take to roll out."
    )
    request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Per API call, including each pod's /metrics scrape through the proxy.",
    )


class PodmanConfig(BaseModel):
    """How the local target calls podman in podman mode (this machine's flags; defaults work on runc + cgroupfs)."""

    model_config = _STRICT
    binary: str = Field(default="podman", description="The podman executable (name on PATH or a path).")
    root: Path | None = Field(
        default=None, description="podman --root (image/container storage); unset: podman's default."
    )
    runroot: Path | None = Field(
        default=None, description="podman --runroot (runtime state); unset: podman's default."
    )
    storage_driver: str | None = Field(
        default=None, description="podman --storage-driver (e.g. overlay); unset: podman's default."
    )
    runtime: str | None = Field(
        default="runc",
        description="podman --runtime (runc here: crun fails on these cgroups); null: podman's default.",
    )
    cgroup_manager: str | None = Field(
        default="cgroupfs",
        description="podman --cgroup-manager (cgroupfs or systemd); null: podman's default.",
    )
    tls_verify: bool | None = Field(
        default=None,
        description="--tls-verify for the pull; unset: SLIPWAY_IMAGE_REGISTRY_TLS_VERIFY (false for a loopback registry).",
    )
    pull_timeout_s: float = Field(
        default=300.0, gt=0, description="Deadline for pulling a release's image by digest before it runs."
    )
    run_args: list[str] = Field(
        default_factory=lambda: ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"],
        description="Extra `podman run` flags for this machine (e.g. ulimits within the host's hard limits).",
    )


class LocalDeployConfig(BaseModel):
    """The local target: how its stable and canary servers run."""

    model_config = _STRICT
    runtime: Literal["process", "podman"] = Field(
        default="process",
        description="process: `python -m slipway.serving` on the release's bundle; podman: `podman run` of the "
        "release's image BY DIGEST (needs the image stage to have pushed it).",
    )
    podman: PodmanConfig = Field(
        default_factory=PodmanConfig, description="podman flags used when runtime is podman."
    )


class DeployConfig(BaseModel):
    """Where the stable (champion) and the canary run, and the traffic the local target replays."""

    model_config = _STRICT
    target: Literal["local", "kubernetes", "none"] = Field(
        default="local",
        description="local: server processes behind a weighted router on loopback (the demo); kubernetes: "
        "Deployments by image digest; none: stop after the image (no canary, no promotion).",
    )
    load_rps: float = Field(
        default=100.0, gt=0, description="Local target: holdout rows replayed per second while a canary runs."
    )
    ready_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="How long the stable may take to become ready when it is (re)deployed.",
    )
    local: LocalDeployConfig = Field(
        default_factory=LocalDeployConfig,
        description="The local target's server runtime, process or podman (used when target is local).",
    )
    kubernetes: KubernetesDeployConfig = Field(
        default_factory=KubernetesDeployConfig,
        description="The kubernetes target's namespace, pods and API access (used when target is kubernetes).",
    )


class BatchesConfig(BaseModel):
    """Where new data batches land: the `retrain` deployment and releases without a data location take the newest."""

    model_config = _STRICT
    location: Path = Field(
        default=Path("data/incoming"),
        description="Folder that receives batch files (relative to the config file); mount or sync remote "
        "storage here.",
    )
    pattern: str = Field(default="*.csv", description="Glob of batch files inside `location`.")
    newest: int = Field(
        default=1,
        ge=1,
        le=100,
        description="How many of the newest batches (by modification time) one release combines, rows concatenated.",
    )


class MonitorConfig(BaseModel):
    """`slipway monitor` and the `monitor` deployment: live data and predictions vs the champion's training reference."""

    model_config = _STRICT
    alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Chance that a window without drift raises any alarm: each column's test runs at alpha / "
        "(columns + 1) (Bonferroni, the predictions included). 0.01: an hourly monitor raises a false alarm "
        "about once in four days, and still finds a 0.5-sigma shift of one column in 1,000 rows (bench/monitor).",
    )
    min_rows: int = Field(
        default=100,
        ge=10,
        description="Fewest live rows a window needs to be judged; fewer is an error (exit 2).",
    )
    since: str = Field(
        default="1h",
        pattern=r"^\d+(\.\d+)?[smhd]$",
        description="Default window of logged predictions when neither --data nor --since is given (e.g. 30m, 1h, 2d).",
    )
    logs: list[str] = Field(
        default_factory=list,
        description="Prediction log files or globs to read (relative to the config file), e.g. what a log pipeline "
        "collected from pods' stdout. Empty: the local server's log (serving prediction log path).",
    )
    reference_rows: int = Field(
        default=5000,
        ge=100,
        description="Most training rows a release records as the drift reference (a seeded sample).",
    )
    metrics_textfile: Path | None = Field(
        default=None,
        description="Prometheus textfile (node_exporter textfile collector) the monitor rewrites with its gauges. "
        "Unset: <reports>/monitor/slipway_monitor.prom.",
    )
    retrain_deployment: str = Field(
        default="retrain/retrain",
        description="Deployment the `monitor` flow runs when it finds drift or a quality breach (once per episode).",
    )


class FeaturesConfig(BaseModel):
    """Where the model's features come from: `none` (the batch's own columns) or a Feast repository's feature service."""

    model_config = _STRICT
    store: Literal["none", "feast"] = Field(
        default="none",
        description="none: batches carry the feature columns; feast: batches carry entity keys, event timestamps "
        "and labels, and features come from `service` in the Feast repository `repo`.",
    )
    repo: Path | None = Field(
        default=None,
        description="Feast repository folder (holds feature_store.yaml and the definitions), relative to the config.",
    )
    service: str | None = Field(
        default=None,
        description="Feature service whose features, in its order, are the model input.",
    )
    online_store: str | None = Field(
        default=None,
        description="Online store replacing feature_store.yaml's without editing it: redis://HOST:PORT[/DB] or "
        "sqlite:///PATH (relative to the config; sqlite:////ABS for an absolute path). "
        "SLIPWAY_FEATURES_ONLINE_STORE overrides this.",
    )
    skew_atol: float = Field(
        default=1e-6, ge=0, description="Absolute tolerance of the online-vs-historical comparison."
    )
    skew_rtol: float = Field(
        default=1e-5, ge=0, description="Relative tolerance (of the historical value) of that comparison."
    )

    @model_validator(mode="after")
    def _feast_needs_repo_and_service(self) -> FeaturesConfig:
        if self.store == "feast":
            unset = [name for name in ("repo", "service") if getattr(self, name) is None]
            if unset:
                raise ValueError(f"store feast needs {' and '.join(unset)} (features.{unset[0]})")
        return self


class PipelineConfig(BaseModel):
    """The whole `slipway.yaml`."""

    model_config = _STRICT
    project: str = Field(default="breast-cancer", description="Project name, shown in reports.")
    data: DataConfig = Field(default_factory=DataConfig, description="Reference data and holdout.")
    validation: ValidationConfig = Field(default_factory=ValidationConfig, description="Data gate.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Training hand-off.")
    quality_gate: QualityGateConfig = Field(default_factory=QualityGateConfig, description="Quality gate.")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="Model registry.")
    optimize: OptimizeConfig = Field(
        default_factory=OptimizeConfig, description="ONNX export and optimization."
    )
    serving: ServingConfig = Field(
        default_factory=ServingConfig, description="Servability check, server workers, prediction log."
    )
    canary: CanaryConfig = Field(
        default_factory=CanaryConfig, description="Canary analysis policy and decision limits."
    )
    deploy: DeployConfig = Field(default_factory=DeployConfig, description="Deploy target.")
    batches: BatchesConfig = Field(
        default_factory=BatchesConfig,
        description="Where new batches land (retraining, releases without data).",
    )
    monitor: MonitorConfig = Field(
        default_factory=MonitorConfig, description="Drift and live-quality monitoring, and what it triggers."
    )
    features: FeaturesConfig = Field(
        default_factory=FeaturesConfig, description="Feature store: none, or a Feast feature service."
    )
    base_dir: Path = Field(
        default=Path("."), exclude=True, description="Folder of the config file (set by the loader)."
    )

    @model_validator(mode="after")
    def _gate_fits_the_task(self) -> PipelineConfig:
        if self.data.task is not None:
            problems = self.quality_gate.problems_for(self.data.task)
            if problems:
                raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _prediction_log_fits_the_target(self) -> PipelineConfig:
        if self.serving.prediction_log.sink == "file" and self._serves_in_containers():
            raise ValueError(
                "serving.prediction_log.sink: file is only for the local target's server processes; containers "
                "(deploy.target kubernetes, deploy.local.runtime podman) log to stdout (sink: auto or stdout)"
            )
        return self

    @model_validator(mode="after")
    def _feature_store_serves_from_processes(self) -> PipelineConfig:
        if self.features.store != "none" and self._serves_in_containers():
            raise ValueError(
                "features.store: feast models are served by local processes only (deploy.target local with "
                "deploy.local.runtime process, or none): the serving image has no Feast and no feature repository, "
                "so its server would never be Ready"
            )
        return self

    def _serves_in_containers(self) -> bool:
        local = self.deploy.target == "local"
        return self.deploy.target == "kubernetes" or (local and self.deploy.local.runtime == "podman")

    def prediction_sink(self) -> Literal["off", "file", "stdout"]:
        """Pure; where deployed servers write prediction records: `serving.prediction_log.sink`, auto resolved
        to file for the local target's processes and stdout in containers (a pod's log pipeline reads stdout)."""
        sink = self.serving.prediction_log.sink
        if sink == "auto":
            return "stdout" if self._serves_in_containers() else "file"
        return sink

    def prediction_log_path(self) -> Path:
        """Pure; the absolute JSONL file of the file sink (`serving.prediction_log.path`, or the default)."""
        path = self.serving.prediction_log.path
        if path is None:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.registry.model_name)
            path = Path(".slipway") / "predictions" / f"{name}.jsonl"
        return self.resolve(path)

    def resolve(self, path: Path) -> Path:
        """Pure; `path` resolved against the config's folder (absolute paths stay)."""
        path = path.expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def suite_path(self) -> Path:
        """The suite file, resolved against the config's folder."""
        path = self.validation.suite
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def batches_path(self) -> Path:
        """The batch folder, resolved against the config's folder."""
        path = self.batches.location
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def training_hash(self) -> str:
        """sha256 of the training section (entrypoint, seed, params) in canonical JSON."""
        blob = json.dumps(self.training.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{key}: {err['msg']}")
    return "; ".join(parts)


def parse_config(raw: Any, *, source: str, base_dir: Path) -> PipelineConfig:
    """Validate a parsed YAML document; raises ConfigError naming each bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return PipelineConfig.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid config: {_describe(exc)}") from None


def load_config(path: Path) -> PipelineConfig:
    """Read and validate `slipway.yaml`; raises ConfigError if missing, unparsable or invalid."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass --config PATH or set SLIPWAY_CONFIG)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, source=str(path), base_dir=path.resolve().parent)
