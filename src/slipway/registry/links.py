"""Links into an MLflow server's UI for one run's files: what a teammate on another machine can open."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class RunLinks:
    """The UI base people open (e.g. https://mlflow.example), and the run whose files the links show."""

    ui: str
    experiment_id: str
    run_id: str

    def run_page(self) -> str:
        """Pure; the run's page."""
        return f"{self.ui.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def artifact_page(self, path: str) -> str:
        """Pure; the run's artifact browser opened on `path` (HTML pages and images render there)."""
        return f"{self.run_page()}/artifactPath/{quote(path)}"

    def artifact_file(self, path: str) -> str:
        """Pure; the file itself as the server sends it (an image for `![...](...)`, a download otherwise)."""
        return f"{self.ui.rstrip('/')}/get-artifact?path={quote(path, safe='')}&run_uuid={self.run_id}"

    def version_page(self, model_name: str, version: str) -> str:
        """Pure; a registered model version's page."""
        return f"{self.ui.rstrip('/')}/#/models/{quote(model_name)}/versions/{version}"


def ui_base(*, tracking_uri: str, explicit: str | None) -> str | None:
    """Pure; where people open the MLflow UI: `explicit`, else an http(s) tracking URI, else None (no server)."""
    if explicit:
        return explicit.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None
