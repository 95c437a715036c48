"""Server settings (env prefix `SLIPWAY_SERVE_`): where the model is, limits, batching, logging, faults;
and the server env a deployed arm gets from the pipeline config (`serve_env`).

Fault injection is off by default and only turns on by explicit env or argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from slipway.errors import ConfigError
from slipway.serving.bundle import absolute_store_url
from slipway.serving.features import ONLINE_STORE_ENV

if TYPE_CHECKING:
    from slipway.config import PipelineConfig

FaultOutput = Literal["none", "nan", "constant", "flip"]
PredictionSinkSetting = Literal["off", "file", "stdout"]
ENV_PREFIX = "SLIPWAY_SERVE_"


class ServeSettings(BaseSettings):
    """How `slipway serve` runs; every field can come from `SLIPWAY_SERVE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="SLIPWAY_SERVE_", extra="ignore")

    model: Path | None = Field(
        default=None,
        description="Serving bundle: a folder with model.onnx + model.json, or an .onnx file beside a model.json.",
    )
    host: str = Field(
        default="127.0.0.1", description="Interface to bind; 0.0.0.0 in a container (set it explicitly)."
    )
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port to listen on.")
    ort_threads: int = Field(default=1, ge=1, description="ONNX Runtime intra-op threads per inference call.")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Server processes sharing the port, each with its own model session, queue and limits; "
            "with more than one, /metrics sums every worker (Prometheus multiprocess mode)."
        ),
    )
    max_inflight: int = Field(
        default=64,
        ge=1,
        description="Per worker: /predict requests computed at once (inline, on threads or micro-batched).",
    )
    max_queue: int = Field(
        default=256,
        ge=0,
        description=(
            "Per worker: /predict requests that may wait for a compute slot; past max_inflight + max_queue "
            "a request is answered 503 with Retry-After at once."
        ),
    )
    deadline_ms: float = Field(
        default=1000.0,
        gt=0,
        description=(
            "A /predict request still waiting this long after its headers arrived is answered 503 "
            "without being computed (micro-batching drops it too)."
        ),
    )
    retry_after_s: int = Field(
        default=1,
        ge=0,
        description="Retry-After (seconds) on a 503 from a full queue, a deadline or the connection cap.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Most seconds from a request's first byte to the end of its headers (slow clients get 408, closed).",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Most seconds from the end of the headers to the end of the body (incomplete uploads get 408, closed).",
    )
    keep_alive_s: float = Field(
        default=5.0,
        gt=0,
        description="An open connection with no request in progress (new or kept alive) is closed after this long.",
    )
    max_connections: int = Field(
        default=2048,
        ge=1,
        description=(
            "Per worker: open connections; past it an idle one (>= 1 s) is closed to make room, else the new "
            "one gets 503 and is closed. Capped below the process's open-file limit."
        ),
    )
    graceful_timeout_s: int = Field(
        default=10,
        ge=1,
        description="On SIGTERM, how long in-flight requests may take before they are cut.",
    )
    access_log: bool = Field(
        default=False, description="uvicorn's per-request access log lines (metrics carry the same counts)."
    )
    max_batch_size: int = Field(
        default=1024, ge=1, description="Most instances one /predict request may carry."
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest /predict body in bytes (checked before parsing)."
    )
    inline_max_ms: float = Field(
        default=0.5,
        ge=0,
        description=(
            "Run calls of <= 32 rows on the event loop when the warmed model's 32-row call takes less than "
            "this many ms (a thread hop costs ~0.1 ms, more than a tiny model); 0 = always off the loop."
        ),
    )
    feature_inline_max_ms: float = Field(
        default=1.0,
        ge=0,
        description=(
            "A bundle with a feature service: look entities up on the event loop when the warmed store's fastest "
            "one-entity read takes less than this many ms and mostly computes (a thread hop costs ~0.1 ms); else "
            "on one lookup thread that gathers concurrent lookups into one read (a read waiting on Redis goes there "
            "too). 0 = always on the thread (an online store that can stall then never blocks the loop)."
        ),
    )
    feature_recheck_s: float = Field(
        default=5.0,
        gt=0,
        description="While the bundle's feature service cannot be opened or has changed (not Ready), check it again "
        "this often.",
    )
    microbatch: bool = Field(
        default=False, description="Gather concurrent requests into one ONNX Runtime call."
    )
    microbatch_max_batch: int = Field(
        default=64, ge=1, description="Micro-batching: most rows in one gathered call."
    )
    microbatch_max_wait_ms: float = Field(
        default=1.0,
        ge=0,
        description="Micro-batching: longest wait for more rows once one request is queued.",
    )
    log_predictions: PredictionSinkSetting | None = Field(
        default=None,
        description="Sampled prediction records: off, file (rotating JSONL at log_predictions_path) or stdout "
        "(one JSON line per record, for a pod's log pipeline); unset: file when log_predictions_path is set, "
        "else off.",
    )
    log_predictions_path: Path | None = Field(
        default=None, description="JSONL file of the file sink (rotated siblings .1, .2, ... beside it)."
    )
    log_sample_rate: float = Field(
        default=0.1, ge=0, le=1, description="Share of /predict requests whose inputs and outputs are logged."
    )
    log_max_bytes: int = Field(
        default=10 << 20, ge=1024, description="Rotate the prediction log when it reaches this size."
    )
    log_backups: int = Field(default=5, ge=0, description="Rotated prediction log files to keep.")
    log_max_record_bytes: int = Field(
        default=64 << 10,
        ge=256,
        description="Largest prediction record line; a larger request is logged without its inputs and "
        "outputs (truncated, with its row count).",
    )
    fault_error_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Fault: share of /predict requests answered 503 (header x-slipway-fault: error).",
    )
    fault_latency_ms: float = Field(
        default=0.0, ge=0, description="Fault: latency added to every /predict request."
    )
    fault_output: FaultOutput = Field(
        default="none",
        description="Fault: corrupt every output: nan (non-finite), constant (same answer for all), flip (classes swapped).",
    )
    lease_s: float | None = Field(
        default=None,
        gt=0,
        description="A canary's traffic lease: /readyz turns 503 once this many seconds pass (from turning ready, "
        "or from the last `POST /lease`) without a renewal, so the Service stops sending it traffic when its release is "
        "gone. Unset: no lease (a stable).",
    )
    fault_slow_start_s: float = Field(
        default=0.0, ge=0, description="Fault: /readyz stays 503 this long after warm-up."
    )
    fault_never_ready: bool = Field(default=False, description="Fault: /readyz never turns 200.")
    fault_seed: int | None = Field(
        default=None, description="Fault: seed of the error-rate draws (unset: random)."
    )

    @model_validator(mode="after")
    def _file_sink_has_a_path(self) -> ServeSettings:
        if self.log_predictions == "file" and self.log_predictions_path is None:
            raise ValueError("log_predictions is file but log_predictions_path is unset")
        return self

    def prediction_sink(self) -> PredictionSinkSetting:
        """Pure; where sampled prediction records go (`log_predictions`, else file when a path is set, else off)."""
        if self.log_predictions is not None:
            return self.log_predictions
        return "file" if self.log_predictions_path is not None else "off"

    def faults_on(self) -> list[str]:
        """Pure; the active fault knobs as `name=value` strings (empty when no fault is on)."""
        active = {
            "error_rate": self.fault_error_rate > 0,
            "latency_ms": self.fault_latency_ms > 0,
            "output": self.fault_output != "none",
            "slow_start_s": self.fault_slow_start_s > 0,
            "never_ready": self.fault_never_ready,
        }
        return [f"{name}={getattr(self, 'fault_' + name)}" for name, on in active.items() if on]


def load_serve_settings(**overrides: Any) -> ServeSettings:
    """Env plus explicit overrides (None values ignored); ConfigError naming each invalid field."""
    try:
        return ServeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else err["msg"]
            for err in exc.errors()
        )
        raise ConfigError(f"serve settings: {problems}") from None


def serve_env_vars(fields: Mapping[str, object]) -> dict[str, str]:
    """Pure; `SLIPWAY_SERVE_<FIELD>` variables for these ServeSettings fields (None omitted); KeyError on an unknown one."""
    env = {}
    for name, value in fields.items():
        if name not in ServeSettings.model_fields:
            raise KeyError(f"ServeSettings has no field {name!r}")
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[ENV_PREFIX + name.upper()] = text
    return env


def serve_env(config: PipelineConfig) -> dict[str, str]:
    """Pure (reads os.environ); the server env every deployed arm gets from the pipeline config (workers,
    prediction log, a feature-store project's online-store override); a canary's fault goes on top. The
    prediction log's sink follows the target (`PipelineConfig.prediction_sink`)."""
    return serve_env_vars(_serve_fields(config)) | features_env(config)


def features_env(config: PipelineConfig) -> dict[str, str]:
    """Pure (reads os.environ); $SLIPWAY_FEATURES_ONLINE_STORE for the servers of a feature-store project whose
    online store is overridden (this process's environment first, else `features.online_store`), a relative
    SQLite path made absolute against the config's folder; {} otherwise. A server opens its bundle's feature
    service with it (passwords travel here, never in model.json)."""
    if config.features.store == "none":
        return {}
    url = os.environ.get(ONLINE_STORE_ENV) or config.features.online_store
    return {ONLINE_STORE_ENV: absolute_store_url(url, base_dir=config.base_dir)} if url else {}


def _serve_fields(config: PipelineConfig) -> dict[str, object]:
    fields: dict[str, object] = {}
    if config.serving.workers != 1:
        fields["workers"] = config.serving.workers
    sink = config.prediction_sink()
    if sink != "off":
        plog = config.serving.prediction_log
        fields |= {
            "log_predictions": sink,
            "log_sample_rate": plog.sample_rate,
            "log_max_record_bytes": plog.max_record_bytes,
        }
        if sink == "file":
            fields |= {
                "log_predictions_path": config.prediction_log_path(),
                "log_max_bytes": plog.max_bytes,
                "log_backups": plog.backups,
            }
    return fields
