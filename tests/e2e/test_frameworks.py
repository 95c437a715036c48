"""Models of every framework released with the CLI into one project, as a team would: a scikit-learn
Pipeline trained by the entrypoint `slipway init --framework sklearn` wrote, a scikit-learn model logged to
MLflow elsewhere (`--model-uri runs:/...`), and a ready ONNX file (`--model-uri model.onnx`), each to a
promoted champion that serves the data's own (string) labels; a model of another MLflow flavor is exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.e2e.test_examples import FAST, cli, release

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# trains outside Slipway on the project's reference data, logs to the project's MLflow store, prints the URI
ELSEWHERE = textwrap.dedent(
    """
    import sys, mlflow, numpy as np, pandas as pd, yaml
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import to_onnx

    cfg = yaml.safe_load(open("slipway.yaml"))
    frame = pd.read_csv(cfg["data"]["reference"])
    x = frame[cfg["data"]["features"]].to_numpy(dtype=np.float32)
    y = frame[cfg["data"]["label_column"]].astype(str).to_numpy()
    if sys.argv[1] == "mlflow":
        forest = make_pipeline(SimpleImputer(), RandomForestClassifier(n_estimators=40, random_state=0)).fit(x, y)
        mlflow.set_tracking_uri(sys.argv[2])
        experiment = mlflow.create_experiment("trained-elsewhere", artifact_location=sys.argv[3])
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(forest, name="model", serialization_format="cloudpickle")
        print(f"runs:/{info.run_id}/model")
    elif sys.argv[1] == "onnx":
        linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
        graph = to_onnx(linear, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
        open(sys.argv[2], "wb").write(graph.SerializeToString())
        print(sys.argv[2])
    else:  # a model of a flavor Slipway does not release
        class Constant(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input):
                return np.zeros(len(model_input))
        mlflow.set_tracking_uri(sys.argv[2])
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="model", python_model=Constant())
        print(f"runs:/{info.run_id}/model")
    """
)


def dataset(path: Path) -> Path:
    """Iris with string species and an integer-coded category column (one-hot encoded by the Pipeline)."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    rng = np.random.default_rng(0)
    frame["soil"] = rng.integers(0, 3, len(frame))
    frame["species"] = np.array(["setosa", "versicolor", "virginica"])[frame.pop("target")]
    frame.to_csv(path, index=False)
    return path


def elsewhere(folder: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", ELSEWHERE, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def serving(folder: Path, api: str) -> tuple[str, dict[str, object]]:
    status = json.loads(cli(folder, api, "status", "--json").stdout)
    return str(status["deploy"]["router_url"]), status


def test_a_pipeline_a_model_logged_elsewhere_and_an_onnx_file_each_become_the_champion(
    api: str, tmp_path: Path
) -> None:
    folder = tmp_path / "flowers"
    made = cli(
        tmp_path, api, "init", str(folder), "--data", str(dataset(tmp_path / "iris.csv")), "--label", "species",
        "--framework", "sklearn",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    config = yaml.safe_load((folder / "slipway.yaml").read_text())
    assert config["training"]["framework"] == "sklearn"
    config["training"]["params"] = {"estimator": "linear", "categorical": ["soil"], "c": 1.0}
    for section, values in FAST.items():
        config[section] = {**config.get(section, {}), **values}
    (folder / "slipway.yaml").write_text(yaml.safe_dump(config))
    tracking = f"sqlite:///{folder / '.slipway' / 'mlflow.db'}"
    try:
        # 1. the entrypoint's Pipeline (impute, scale, one-hot, LogisticRegression): the first champion
        code, first = release(folder, api, 1)
        assert (code, first["decision"], first["model_version"]) == (0, "promoted", "1"), first["reasons"]
        assert first["lineage"]["slipway.model.framework"] == "sklearn"  # type: ignore[index]
        assert first["lineage"]["slipway.model.class"] == "Pipeline(ColumnTransformer, LogisticRegression)"  # type: ignore[index]

        # 2. a forest logged to MLflow by someone else: canaried against the Pipeline, promoted
        uri = elsewhere(folder, "mlflow", tracking, (tmp_path / "elsewhere-artifacts").as_uri())
        code, second = release(folder, api, 2, "--model-uri", uri)
        assert (code, second["decision"], second["model_version"]) == (0, "promoted", "2"), second["reasons"]
        assert second["deploy"]["previous_champion"] == "1"  # type: ignore[index]

        # 3. a ready ONNX file (skl2onnx's own names: input X, outputs label + probabilities): promoted
        onnx_file = elsewhere(folder, "onnx", str(tmp_path / "linear.onnx"))
        code, third = release(folder, api, 3, "--model-uri", onnx_file)
        assert (code, third["decision"], third["model_version"]) == (0, "promoted", "3"), third["reasons"]
        assert third["lineage"]["slipway.model.framework"] == "onnx"  # type: ignore[index]

        # the champion serves the data's string labels, probabilities per class
        router, status = serving(folder, api)
        assert status["champion_version"] == "3"
        model = httpx.get(f"{router}/model", timeout=10).json()
        rows = pd.read_csv(folder / "data" / "incoming" / "batch-3.csv")[model["features"]].head(6)
        answer = httpx.post(
            f"{router}/predict", json={"instances": rows.to_numpy().tolist()}, timeout=10
        ).json()
        assert answer["model_version"] == "3"
        for row in answer["predictions"]:
            assert row["label"] in ("setosa", "versicolor", "virginica")
            assert list(row["probabilities"]) == ["setosa", "versicolor", "virginica"]
            assert abs(sum(row["probabilities"].values()) - 1.0) < 1e-4

        # 4. a model of a flavor Slipway cannot release: exit 2 naming it and the supported ones; nothing registered
        pyfunc = elsewhere(folder, "pyfunc", tracking)
        code, refused = release(folder, api, 4, "--model-uri", pyfunc)
        assert (code, refused["decision"]) == (2, "error")
        said = " ".join(refused["reasons"])  # type: ignore[arg-type]
        assert "python_function" in said and "'sklearn'" in said and "'onnx'" in said
        assert json.loads(cli(folder, api, "status", "--json").stdout)["champion_version"] == "3"
    finally:
        cli(folder, api, "deploy", "stop")
