"""Environment defaults applied by the CLI before Prefect, MLflow or GX are imported."""

from __future__ import annotations

import os
from pathlib import Path

from slipway.settings import Settings

_DEFAULTS = {
    # a fresh ephemeral Prefect server needs 19-30 s on 2 cores; Prefect's default timeout is 20 s
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def apply_runtime_defaults(settings: Settings) -> None:
    """Set env defaults the user has not set; keeps Prefect's local state under the state folder."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(settings.home_path() / "prefect"))
    # Prefect's SQLite cannot create the folder of its database itself ("unable to open database file")
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
