"""`make bench`, frameworks section: ONNX Runtime against the native scikit-learn model it was converted from.

Two scikit-learn Pipelines on the shipped example's data (breast cancer, 30 features): a scaler and a
linear model, and a scaler and a RandomForest of 100 trees (plus LightGBM/XGBoost where installed).
Each goes through the release's own path: the sklearn adapter's export and parity gate, then one
interleaved `measure()` of the FP32 graph (ORT, 1 thread) against the native `predict_proba`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from slipway.config import OptimizeConfig
from slipway.data.reference import Reference
from slipway.frameworks.sklearn import SklearnAdapter
from slipway.optimize.measure import measure, ort_runner
from slipway.optimize.parity import check_parity

ORT = "ort_fp32"


def pipelines(seed: int = 0) -> dict[str, tuple[str, Any]]:
    """Pure; the unfitted models benched: name -> (description, estimator)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models: dict[str, tuple[str, Any]] = {
        "sklearn_linear": (
            "Pipeline(StandardScaler, LogisticRegression)",
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)),
        ),
        "sklearn_forest": (
            "Pipeline(StandardScaler, RandomForestClassifier(100 trees))",
            make_pipeline(
                StandardScaler(), RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
            ),
        ),
    }
    try:
        import lightgbm

        models["lightgbm"] = (
            "LGBMClassifier(100 trees, 31 leaves)",
            lightgbm.LGBMClassifier(n_estimators=100, verbose=-1, random_state=seed, n_jobs=1),
        )
    except ImportError:
        pass
    try:
        import xgboost

        models["xgboost"] = (
            "XGBClassifier(100 trees, depth 6)",
            xgboost.XGBClassifier(n_estimators=100, max_depth=6, random_state=seed, n_jobs=1),
        )
    except ImportError:
        pass
    return models


def bench_frameworks(ref: Reference, *, cfg: OptimizeConfig, work_dir: Path) -> dict[str, Any]:
    """Blocking (~10-60 s); per model: parity, p50 of ORT FP32 and native at each batch, and their ratio."""
    adapter = SklearnAdapter()
    train = ref.pool
    x_train = train.loc[:, list(ref.features)].to_numpy(dtype=np.float32)
    y_train = ref.target.encode(train[ref.label])
    x, y = ref.holdout_xy()
    b = cfg.bench
    out: dict[str, Any] = {}
    for name, (description, estimator) in pipelines().items():
        start = time.perf_counter()
        model = estimator.fit(x_train, y_train)
        exported = adapter.export(
            model, example=x, path=work_dir / f"{name}.onnx", opset=cfg.opset, target=ref.target
        )
        parity = check_parity(
            adapter.raw_outputs(model, x, target=ref.target),
            exported.path,
            x,
            atol=cfg.parity.atol,
            rtol=cfg.parity.rtol,
            target=ref.target,
            output="probabilities",
        )
        runners = [
            ort_runner(ORT, exported.path, threads=b.threads),
            adapter.runner(model, threads=1, target=ref.target),
        ]
        m = measure(
            runners,
            x=x,
            y=y,
            batches=b.batches,
            warmup=b.warmup,
            rounds=b.rounds,
            iterations=b.iterations,
            load_repeats=b.load_repeats,
        )
        native = m[adapter.reference]
        out[name] = {
            "description": description,
            "converter": exported.converter,
            "onnx_size_bytes": exported.size_bytes,
            "parity": parity.summary(),
            "accuracy": {ORT: m[ORT].quality, adapter.reference: native.quality},
            "p50_ms": {
                str(batch): {ORT: round(m[ORT].p50(batch), 5), adapter.reference: round(native.p50(batch), 5)}
                for batch in b.batches
            },
            "ort_over_native_p50": {
                str(batch): round(m[ORT].p50(batch) / native.p50(batch), 4) for batch in b.batches
            },
            "wall_s": round(time.perf_counter() - start, 1),
        }
    return out
