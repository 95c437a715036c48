"""The serving image has no torch: importing and running the server must not pull in a heavy library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "mlflow", "prefect", "great_expectations", "sklearn", "pandas", "onnx", "typer")
SERVING_MODULES = (
    "slipway.serving.app",
    "slipway.serving.server",
    "slipway.serving.__main__",
    "slipway.serving.bundle",
    "slipway.serving.settings",
)


def test_importing_and_serving_loads_no_heavy_module(bundle_dir: Path) -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {SERVING_MODULES!r}: importlib.import_module(name)\n"
        "imported = sorted(m for m in sys.modules if m.split('.')[0] in HEAVY)\n"
        "from fastapi.testclient import TestClient\n"
        "from slipway.serving.app import create_app\n"
        "from slipway.serving.settings import ServeSettings\n"
        f"with TestClient(create_app(ServeSettings(model={str(bundle_dir)!r}))) as client:\n"
        "    assert client.post('/predict', json={'instances': [[0.0] * 30]}).status_code == 200\n"
        "served = sorted(m for m in sys.modules if m.split('.')[0] in HEAVY)\n"
        "print(json.dumps({'imported': imported, 'served': served}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"imported": [], "served": []}
