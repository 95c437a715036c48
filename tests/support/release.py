"""A prepared release on the example project, for tests of stages and of the stage pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from slipway.config import PipelineConfig
from slipway.data.batch_io import write_batch
from slipway.data.generate import make_batch
from slipway.data.reference import load_reference
from slipway.release.context import ReleaseContext, prepare

REPO = Path(__file__).resolve().parents[2]


def example_config(folder: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Blocking; the repo's slipway.yaml with `overrides` merged per section, written into `folder`."""
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    for section, values in (overrides or {}).items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "slipway.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def prepared(folder: Path, *, seed: int = 1, rows: int = 200, **kwargs: Any) -> ReleaseContext:
    """Blocking (~1 s first call: imports the entrypoint); a ReleaseContext over a generated batch."""
    overrides = kwargs.pop("overrides", None)
    config = example_config(folder, overrides)
    batch = folder / f"batch-{seed}.csv"
    write_batch(make_batch(load_reference(PipelineConfig().data), rows=rows, seed=seed), batch)
    return prepare(config_path=config, data=str(batch), model_uri=kwargs.pop("model_uri", None), **kwargs)
