"""Scheduled retraining releases the newest batch, or skips when the champion learned from it."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from slipway.config import PipelineConfig
from slipway.data.batch_io import write_batch
from slipway.data.generate import make_batch
from slipway.data.reference import load_reference
from slipway.hashing import file_sha256
from slipway.release.retrain import plan_retrain
from tests.unit.ops_world import MODEL, clock, registration

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    raw["registry"]["model_name"] = MODEL
    raw["batches"] = {"location": "incoming"}  # relative to the config file
    path = tmp_path / "slipway.yaml"
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "incoming").mkdir()
    return path


def _batch(folder: Path, name: str, *, seed: int, mtime: int) -> Path:
    path = folder / name
    write_batch(make_batch(load_reference(PipelineConfig().data), rows=60, seed=seed), path)
    os.utime(path, (mtime, mtime))
    return path


def test_retrain_releases_the_newest_batch_until_the_champion_has_learned_from_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _batch(tmp_path / "incoming", "old.csv", seed=1, mtime=1_000)
    newest = _batch(tmp_path / "incoming", "new.csv", seed=2, mtime=2_000)
    reg = clock()
    plan = plan_retrain(config_path=config, registry=reg)  # no champion yet
    assert plan.data_path == str(newest) and plan.skip_reason is None
    reg.register(registration("k1", tags={"slipway.data_sha256": file_sha256(newest)}))
    reg.promote(model_name=MODEL, version="1", reason="first")
    skipped = plan_retrain(config_path=config, registry=reg)
    assert skipped.skip_reason is not None and "up to date: champion m version 1" in skipped.skip_reason
    fresh = _batch(tmp_path / "incoming", "fresh.csv", seed=3, mtime=3_000)
    again = plan_retrain(config_path=config, registry=reg)
    assert again.data_path == str(fresh) and again.skip_reason is None
