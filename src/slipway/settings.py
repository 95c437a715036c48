"""Process settings (env prefix `SLIPWAY_`): where state lives and which servers to talk to.

Nothing here touches the disk or the network: paths are resolved when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Slipway keeps state. Every location can be pointed elsewhere by env or by argument."""

    model_config = SettingsConfigDict(env_prefix="SLIPWAY_", extra="ignore")

    home: Path = Field(
        default=Path(".slipway"),
        description="State folder of the embedded defaults (MLflow SQLite db, artifacts, GX, reports).",
    )
    config: Path = Field(
        default=Path("slipway.yaml"),
        description="Path of the pipeline config file.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description=(
            "MLflow tracking URI (e.g. http://mlflow:5000). Unset: MLFLOW_TRACKING_URI, "
            "else SQLite at <home>/mlflow.db."
        ),
    )
    mlflow_ui_url: str | None = Field(
        default=None,
        description=(
            "Base URL people open the MLflow UI at (e.g. https://mlflow.example.com), for the links in Prefect "
            "artifacts and version descriptions. Unset: the tracking URI when it is http(s); none on SQLite."
        ),
    )
    mlflow_artifact_location: str | None = Field(
        default=None,
        description="Artifact root for a new experiment. Unset: <home>/mlartifacts on SQLite, server default otherwise.",
    )
    gx_dir: Path | None = Field(
        default=None,
        description="Great Expectations project folder. Unset: <home>/gx.",
    )
    data_docs_dir: Path | None = Field(
        default=None,
        description="Folder the Great Expectations Data Docs site is built in. Unset: <home>/data_docs.",
    )
    reports_dir: Path | None = Field(
        default=None,
        description="Folder for release reports (JSON decisions). Unset: <home>/reports.",
    )

    work_dir: Path | None = Field(
        default=None,
        description="Scratch folder for stage outputs (ONNX exports, candidates, engines). Unset: <home>/work.",
    )

    image_builder: Literal["auto", "buildah", "docker", "fake"] = Field(
        default="auto",
        description="Image builder: auto (docker if its daemon answers, else buildah), buildah, docker, fake (tests).",
    )
    image_registry: str | None = Field(
        default=None,
        description="Registry repository images are pushed to (e.g. 127.0.0.1:5000/slipway). Unset: no push.",
    )
    image_registry_tls_verify: bool = Field(
        default=True,
        description="Require HTTPS with a verified certificate when pushing and pulling (false for a loopback registry).",
    )
    buildah_root: Path | None = Field(
        default=None,
        description="buildah/podman storage root (images, layer cache). Unset: <home>/containers/storage.",
    )
    buildah_runroot: Path | None = Field(
        default=None,
        description="buildah/podman run root (locks, mounts). Unset: <home>/containers/run.",
    )
    base_image: str = Field(
        default="python:3.11-slim",
        description="BASE_IMAGE of the serving image: python:3.11-slim, a TensorRT base for GPU images, or a local base.",
    )
    release_lock_wait_s: float = Field(
        default=300.0,
        ge=0,
        description="How long a release waits for another live release of the same environment to finish "
        "before it exits 2 naming the holder (0: refuse at once).",
    )
    release_lock_ttl_s: float = Field(
        default=60.0,
        gt=0,
        description="A release renews its lease every third of this; a holder silent this long (or whose "
        "process is dead, on the same host) is broken by the next release.",
    )

    def buildah_root_path(self) -> Path:
        """The buildah storage root (not created)."""
        return (self.buildah_root or self.home_path() / "containers" / "storage").expanduser().resolve()

    def buildah_runroot_path(self) -> Path:
        """The buildah run root (not created)."""
        return (self.buildah_runroot or self.home_path() / "containers" / "run").expanduser().resolve()

    def work_path(self) -> Path:
        """The scratch folder for stage outputs (not created)."""
        return (self.work_dir or self.home_path() / "work").expanduser().resolve()

    def home_path(self) -> Path:
        """The absolute state folder (not created)."""
        return self.home.expanduser().resolve()

    def resolved_tracking_uri(self, *, env_uri: str | None) -> str:
        """Tracking URI to use: explicit setting, then MLFLOW_TRACKING_URI, then local SQLite."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if env_uri:
            return env_uri
        return f"sqlite:///{self.home_path() / 'mlflow.db'}"

    def resolved_artifact_location(self, *, tracking_uri: str) -> str | None:
        """Artifact root for new experiments; None lets an MLflow server choose."""
        if self.mlflow_artifact_location:
            return self.mlflow_artifact_location
        if tracking_uri.startswith("sqlite:") or tracking_uri.startswith("file:"):
            return (self.home_path() / "mlartifacts").as_uri()
        return None

    def gx_path(self) -> Path:
        """The Great Expectations project folder."""
        return (self.gx_dir or self.home_path() / "gx").expanduser().resolve()

    def data_docs_path(self) -> Path:
        """The Data Docs site folder."""
        return (self.data_docs_dir or self.home_path() / "data_docs").expanduser().resolve()

    def reports_path(self) -> Path:
        """The release reports folder."""
        return (self.reports_dir or self.home_path() / "reports").expanduser().resolve()
