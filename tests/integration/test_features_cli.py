"""`slipway features apply | materialize | skew` on a copy of the breast-cancer-feast example (SQLite online),
through `slipway.cli.main` in this process (the exit codes the console script gives, without paying Feast's
import per command): skew exits 2 before anything is materialized, 0 on a consistent store, 1 naming each
skewed value, and a second apply/materialize is a cached no-op."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from slipway.cli import main
from slipway.features.base import EVENT_TIMESTAMP
from slipway.features.feast_store import FeastFeatureStore
from tests.support.feast_example import SERVICE, VIEWS, copy_example, visit_time, visits

pytestmark = pytest.mark.integration
END = "2025-06-01T00:00:00+00:00"


def slipway(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Runs `slipway ARGS`; its exit code, stdout and stderr."""
    monkeypatch.setattr(sys, "argv", ["slipway", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def cached_apply_skips_feast(config: str, *, home: Path) -> bool:
    """`slipway features apply` in a fresh process, already applied: cached, and Feast (~6 s) never imported."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('feast imported' if 'feast' in sys.modules else 'no feast'))\n"
        "from slipway.cli import main\n"
        f"sys.argv = ['slipway', 'features', 'apply', '--config', {config!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "cached" in proc.stdout, proc.stdout + proc.stderr
    return proc.stderr.endswith("no feast")


def test_features_skew_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = copy_example(tmp_path / "project", whole=True)
    config = str(repo.parent / "slipway.yaml")
    monkeypatch.setenv("SLIPWAY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SLIPWAY_FEATURES_ONLINE_STORE", raising=False)

    code, _, err = slipway(monkeypatch, capsys, "features", "skew", "--config", config)
    assert code == 2 and "error:" in err and "slipway features apply" in err

    code, out, _ = slipway(
        monkeypatch, capsys, "features", "materialize", "--end", END, "--config", config, "--json"
    )
    assert code == 0 and json.loads(out) == {**json.loads(out), "step": "materialize", "cached": False}
    code, out, _ = slipway(monkeypatch, capsys, "features", "apply", "--config", config, "--json")
    assert code == 0 and json.loads(out)["cached"] is True
    code, out, _ = slipway(monkeypatch, capsys, "features", "materialize", "--config", config)  # --end now
    assert code == 0 and "cached" in out and "the same rows" in out

    assert cached_apply_skips_feast(config, home=tmp_path / "home")

    code, out, _ = slipway(monkeypatch, capsys, "features", "skew", "--config", config, "--json")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "consistent" and report["entities"] == 569

    # a serving path that writes one feature transformed (x 1.1) for patient 7
    frame = visits()
    row = frame[(frame["patient_id"] == 7) & (frame[EVENT_TIMESTAMP] == visit_time(7, 2))].copy()
    row["mean_texture"] = row["mean_texture"] * 1.1
    store = FeastFeatureStore(repo=repo, service=SERVICE, state_dir=tmp_path / "other-state")
    store.feast.write_to_online_store(VIEWS[0], pd.DataFrame(row))

    code, out, _ = slipway(monkeypatch, capsys, "features", "skew", "--config", config)
    assert code == 1, out
    assert "feature skew: skewed: 1 values differ" in out
    assert "patient_id=7: mean_texture online 22.913" in out and "historical 20.829" in out
