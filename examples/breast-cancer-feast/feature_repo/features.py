"""The breast-cancer features as Feast objects: one entity (a patient), two feature views over the
visits file, and the feature service the model reads (its features, in this order, are the model input)."""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float32
from feast.value_type import ValueType

MEASURES = (
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

patient = Entity(name="patient", join_keys=["patient_id"], value_type=ValueType.INT64)

visits = FileSource(
    name="visits",
    path="data/measurements.parquet",
    timestamp_field="event_timestamp",
)

tumor_means = FeatureView(
    name="tumor_means",
    entities=[patient],
    ttl=timedelta(0),  # 0: a value stays valid until the patient's next visit
    schema=[Field(name=f"mean_{m}", dtype=Float32) for m in MEASURES],
    source=visits,
)

tumor_extremes = FeatureView(
    name="tumor_extremes",
    entities=[patient],
    ttl=timedelta(0),
    schema=[Field(name=f"{m}_error", dtype=Float32) for m in MEASURES]
    + [Field(name=f"worst_{m}", dtype=Float32) for m in MEASURES],
    source=visits,
)

tumor_diagnosis = FeatureService(name="tumor_diagnosis", features=[tumor_means, tumor_extremes])
