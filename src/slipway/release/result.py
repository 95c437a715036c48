"""The release result: the JSON contract of `slipway release --json`, of the flow's return value and
of `.slipway/reports/release-*.json`. Stages change it only through a typed `ResultPatch`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slipway.names import Decision, Stage


class ResultPatch(BaseModel):
    """The result fields one stage may fill; unknown keys and wrong types are errors, never silent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str | None = None
    model_version: str | None = None
    metrics: dict[str, float] | None = None
    champion_version: str | None = None
    lineage: dict[str, str] | None = None
    optimization: dict[str, Any] | None = None
    tensorrt: str | None = None
    image: dict[str, Any] | None = None
    deploy: dict[str, Any] | None = None
    data_docs: str | None = None
    mlflow_run_id: str | None = None
    links: dict[str, str] | None = None

    def fields(self) -> dict[str, Any]:
        """Pure; only the fields this patch sets."""
        return {k: getattr(self, k) for k in self.model_fields_set}


class ReleaseResult(BaseModel):
    """What a release ended in, where, and why."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    decision: Decision = Field(description="registered | rejected | promoted | rolled_back | error.")
    stage: Stage = Field(
        description="Where the decision was made: the stage that rejected or failed, `register` for a "
        "registered release, `canary` for a promoted or rolled-back one."
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
    config_sha256: str | None = Field(
        default=None, description="sha256 of the config snapshot every stage of this release read."
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        description="Evidence a teammate can open: label -> URL (MLflow server, Prefect UI) or local path.",
    )

    def why(self) -> str:
        """Pure; the deciding reason: every FAIL/ERROR line, else the canary's own reason, else its line,
        else the last reason."""
        lines = [r for r in self.reasons if r.strip()]
        failing = [r for r in lines if r.startswith(("FAIL", "ERROR"))]
        if failing:
            return "; ".join(failing)
        if self.stage == "canary" and self.deploy.get("reason"):
            return str(self.deploy["reason"])
        canary = [r for r in lines if r.startswith("canary ")]
        return canary[0] if canary else (lines[-1] if lines else "")

    def patched(self, patch: ResultPatch) -> ReleaseResult:
        """Pure; this result with the patch's fields set (re-validated)."""
        return ReleaseResult.model_validate({**self.model_dump(), **patch.fields()})

    def summary_rows(self) -> list[dict[str, str]]:
        """Rows for the `release-summary` table artifact (what CI reads back through the API): the deciding
        fields first; `value` fits the UI's box (shortened with …), `full` holds the whole value when it was cut."""
        from slipway.reporting.cells import shorten, shorten_middle

        record = self.image.get("record") or {}
        reasons = [r for r in self.reasons if r.strip()]
        values = {
            "decision": self.decision,
            "model_version": self.model_version or "",
            "stage": self.stage,
            "why": self.why(),
            "serving_version": str(self.deploy.get("stable_version") or ""),
            "model_name": self.model_name or "",
            "champion_compared": self.champion_version or "",
            "commit": self.commit or "",
            "image_reference": str(record.get("reference") or ""),
            "image_digest": str(record.get("digest") or ""),
            "data": self.data_path or "",
            "mlflow_run_id": self.mlflow_run_id or "",
            "reasons": "\n".join(reasons),
        }
        middle = {"image_reference", "image_digest", "data"}
        rows = []
        for key, full in values.items():
            short = (shorten_middle if key in middle else shorten)(full)
            if key == "reasons" and len(reasons) > 1:
                short = f"{len(reasons)} lines (full text: `full` column, release-decision)"
            rows.append({"field": key, "value": short, "full": full if short != full else ""})
        return rows

    def as_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return self.model_dump(mode="json")
