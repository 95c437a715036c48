"""The breast-cancer-feast example for tests: copies of it (Feast's generated files left out), its visits
read back as the expected values, and a skewed online write through Feast."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast-cancer-feast"
FEATURE_REPO = EXAMPLE / "feature_repo"
SERVICE = "tumor_diagnosis"
VIEWS = ("tumor_means", "tumor_extremes")
FIRST_VISIT = datetime(2025, 1, 1, tzinfo=UTC)
VISIT_GAP = timedelta(days=30)
VISITS = 3
MATERIALIZE_END = datetime(2025, 6, 1, tzinfo=UTC)  # past every visit
_MEASURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
)
FEATURES = (
    *(f"mean_{m}" for m in _MEASURES),
    *(f"{m}_error" for m in _MEASURES),
    *(f"worst_{m}" for m in _MEASURES),
)


def copy_example(dest: Path, *, whole: bool = False) -> Path:
    """Blocking; a copy of the example's feature repository (or, `whole`, the project) without Feast's
    registry/online files; returns the copy's feature-repository folder."""
    source = EXAMPLE if whole else FEATURE_REPO
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("*.db", "__pycache__", ".slipway"))
    return dest / "feature_repo" if whole else dest


def visits() -> pd.DataFrame:
    """Blocking (reads the Parquet source); one row per visit, as Feast reads it."""
    return pd.read_parquet(FEATURE_REPO / "data" / "measurements.parquet")


def visit_time(patient: int, visit: int) -> pd.Timestamp:
    """Pure; when `patient` had `visit` (0, 1, 2): 30 days apart, patients a minute apart."""
    return pd.Timestamp(FIRST_VISIT + visit * VISIT_GAP + timedelta(minutes=patient))


def visit_values(frame: pd.DataFrame, patient: int, visit: int) -> np.ndarray:
    """Pure; float32 [30] of one visit, in FEATURES order."""
    rows = frame[(frame["patient_id"] == patient) & (frame["event_timestamp"] == visit_time(patient, visit))]
    assert len(rows) == 1, (patient, visit, len(rows))
    return rows[list(FEATURES)].to_numpy(dtype=np.float32)[0]


def change_one_definition(repo: Path) -> None:
    """Blocking; edits the copy's features.py: `mean_area` becomes Float64 (a changed field definition)."""
    path = repo / "features.py"
    text = path.read_text()
    old = 'schema=[Field(name=f"mean_{m}", dtype=Float32) for m in MEASURES],'
    assert old in text, "the example's features.py changed: update change_one_definition"
    text = text.replace(
        old, 'schema=[Field(name=f"mean_{m}", dtype=Float64 if m == "area" else Float32) for m in MEASURES],'
    )
    path.write_text(
        text.replace("from feast.types import Float32", "from feast.types import Float32, Float64")
    )


def retag(repo: Path) -> None:
    """Blocking; edits the copy's features.py: a tag and a description on a view (nothing that changes a value)."""
    path = repo / "features.py"
    text = path.read_text()
    old = 'name="tumor_means",'
    assert old in text
    path.write_text(text.replace(old, 'name="tumor_means", tags={"team": "oncology"}, description="means",'))
