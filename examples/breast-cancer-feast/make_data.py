"""Regenerate this example's data from scikit-learn's bundled breast-cancer set (no download, deterministic).

    python examples/breast-cancer-feast/make_data.py

Every one of the 569 rows becomes a patient (`patient_id` = row number) measured three times, 30 days
apart: the first visits read 10% and 5% lower than the dataset's row, the last one reads it exactly.
* `feature_repo/data/measurements.parquet`: the Feast offline source, one row per visit (patient_id,
  event_timestamp, the 30 features as float32, snake_case names);
* `data/labels.parquet`: what a training batch carries: patient_id, event_timestamp (a day after the last
  visit) and the diagnosis. A point-in-time join at that timestamp gives each label the last visit's
  values; a join that leaked later rows or took an earlier visit would give the scaled ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FIRST_VISIT = datetime(2025, 1, 1, tzinfo=UTC)
VISIT_SCALES = (0.90, 0.95, 1.0)  # visit k reads the dataset's row x VISIT_SCALES[k]
VISIT_GAP = timedelta(days=30)
LABEL_DELAY = timedelta(days=1)


def feature_name(column: str) -> str:
    """Pure; scikit-learn's column name as a Feast field name (`mean radius` -> `mean_radius`)."""
    return column.replace(" ", "_")


def measurements() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pure (deterministic); the visits frame and the labels frame described above."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    features = data.data.rename(columns=feature_name).astype(np.float64)
    patients = np.arange(len(features), dtype=np.int64)
    offsets = pd.to_timedelta(patients, unit="min")  # patients' visits are staggered by a minute
    visits = []
    for k, scale in enumerate(VISIT_SCALES):
        visit = (features * scale).astype(np.float32)
        visit.insert(0, "event_timestamp", pd.Timestamp(FIRST_VISIT + k * VISIT_GAP) + offsets)
        visit.insert(0, "patient_id", patients)
        visits.append(visit)
    frame = pd.concat(visits, ignore_index=True)
    last = pd.Timestamp(FIRST_VISIT + (len(VISIT_SCALES) - 1) * VISIT_GAP) + offsets
    labels = pd.DataFrame(
        {
            "patient_id": patients,
            "event_timestamp": last + LABEL_DELAY,
            "diagnosis": data.target.map({0: "malignant", 1: "benign"}).to_numpy(),
        }
    )
    return frame, labels


def main() -> None:
    frame, labels = measurements()
    (HERE / "feature_repo" / "data").mkdir(parents=True, exist_ok=True)
    (HERE / "data").mkdir(exist_ok=True)
    frame.to_parquet(HERE / "feature_repo" / "data" / "measurements.parquet", index=False)
    labels.to_parquet(HERE / "data" / "labels.parquet", index=False)


if __name__ == "__main__":
    main()
