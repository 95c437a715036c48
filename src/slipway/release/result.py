"""The release result: the JSON contract of `slipway release --json` and of the flow's return value."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Decision = Literal["registered", "rejected", "promoted", "rolled_back", "error"]


class ReleaseResult(BaseModel):
    """What a release ended in, where, and why."""

    decision: Decision = Field(description="registered | rejected (later: promoted | rolled_back) | error.")
    stage: str = Field(
        description="The last stage reached: validation, training, quality_gate, export, parity, optimize, servability, register, image."
    )
    model_version: str | None = Field(default=None, description="Registered version, if any.")
    model_name: str | None = Field(default=None, description="Registered model name.")
    reasons: list[str] = Field(default_factory=list, description="Why: failed expectations or gate lines.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Challenger holdout metrics.")
    champion_version: str | None = Field(default=None, description="Champion compared against, if any.")
    lineage: dict[str, str] = Field(default_factory=dict, description="Lineage tags of the release.")
    timings_s: dict[str, float] = Field(default_factory=dict, description="Wall seconds per stage.")
    cached: list[str] = Field(default_factory=list, description="Stages whose result came from the cache.")
    optimization: dict[str, Any] = Field(
        default_factory=dict,
        description="Shipped ONNX candidate, its artifact and sha256, parity numbers (empty before the stage).",
    )
    tensorrt: str | None = Field(
        default=None, description="TensorRT outcome: built, skipped (why) or failed (why)."
    )
    deploy: dict[str, Any] = Field(
        default_factory=dict,
        description="Deploy stage: promoted/rolled_back, reason, serving version, every canary decision.",
    )
    image: dict[str, Any] = Field(
        default_factory=dict,
        description="Serving image: status, reason, and when built its tag, digest and pinned reference.",
    )
    data_docs: str | None = Field(default=None, description="Data Docs page of the validation.")
    mlflow_run_id: str | None = Field(default=None, description="MLflow run holding this attempt.")
    flow_run_id: str | None = Field(default=None, description="Prefect flow run id.")
    commit: str | None = Field(default=None, description="Git commit of the code that ran the release.")
    data_path: str | None = Field(default=None, description="The batch file the release used.")

    def summary_rows(self) -> list[dict[str, str]]:
        """Field/value rows for the `release-summary` table artifact (what CI reads back through the API)."""
        values = {
            "decision": self.decision,
            "stage": self.stage,
            "model_name": self.model_name or "",
            "model_version": self.model_version or "",
            "champion_compared": self.champion_version or "",
            "image_digest": str(self.image.get("record", {}).get("digest") or ""),
            "image_reference": str(self.image.get("record", {}).get("reference") or ""),
            "serving_version": str(self.deploy.get("stable_version") or ""),
            "commit": self.commit or "",
            "data": self.data_path or "",
            "mlflow_run_id": self.mlflow_run_id or "",
            "reasons": "\n".join(self.reasons),
        }
        return [{"field": k, "value": v} for k, v in values.items()]

    def exit_code(self) -> int:
        """CLI contract: 0 registered/promoted, 1 a gate rejected it or the canary rolled it back, 2 error."""
        return {"rejected": 1, "rolled_back": 1, "error": 2}.get(self.decision, 0)

    def as_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return self.model_dump(mode="json")
