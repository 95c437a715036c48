"""Pipeline config (`slipway.yaml`) validation and process settings resolution."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from slipway.config import PipelineConfig, load_config, parse_config
from slipway.errors import ConfigError
from slipway.registry.factory import tracking_uri
from slipway.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slipway.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# -- load_config ---------------------------------------------------------------------------------


def test_repo_config_loads_and_suite_resolves_to_an_existing_file() -> None:
    cfg = load_config(REPO / "slipway.yaml")
    assert cfg.base_dir == REPO
    assert cfg.suite_path() == REPO / "expectations" / "breast_cancer.json"
    assert cfg.suite_path().is_file()
    assert cfg.training.entrypoint == "slipway.examples.breast_cancer:train"
    assert cfg.quality_gate.thresholds == {"accuracy": 0.90, "roc_auc": 0.95}
    assert cfg.data.label_column == "target"


def test_suite_path_resolves_against_the_config_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "proj"
    sub.mkdir()
    _write(sub, "validation: {suite: suites/s.json}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(Path("proj/slipway.yaml")).suite_path() == (sub / "suites" / "s.json").resolve()


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, ""))
    assert cfg.model_dump() == PipelineConfig().model_dump()


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as exc:
        load_config(missing)
    assert str(missing) in str(exc.value)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "data: [unclosed\n  other: {\n")
    with pytest.raises(ConfigError, match="not valid YAML") as exc:
        load_config(path)
    assert str(path) in str(exc.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        quality_gat:
          thresholds: {accuracy: 0.9}
        """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert "quality_gat" in msg
    assert str(path) in msg


def test_unknown_nested_key_is_named_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"training\.epochs"):
        parse_config({"training": {"epochs": 3}}, source="inline", base_dir=Path("."))


def test_wrong_type_names_the_dotted_key(tmp_path: Path) -> None:
    path = _write(tmp_path, 'data: {holdout_fraction: "x"}\n')
    with pytest.raises(ConfigError, match=r"data\.holdout_fraction"):
        load_config(path)


def test_out_of_range_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data\.holdout_fraction"):
        parse_config({"data": {"holdout_fraction": 0.95}}, source="inline", base_dir=Path("."))


def test_unknown_metric_in_thresholds_is_rejected_by_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "quality_gate: {thresholds: {accuracy: 0.9, precision: 0.8}}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert "quality_gate.thresholds" in msg
    assert "precision" in msg


def test_unknown_metric_in_max_regression_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match=r"quality_gate\.max_regression.*recall"):
        parse_config({"quality_gate": {"max_regression": {"recall": 0.1}}}, source="x", base_dir=Path("."))


@pytest.mark.parametrize("entrypoint", ["slipway.examples.breast_cancer", "module:", ":train", ""])
def test_bad_entrypoint_format_is_rejected(tmp_path: Path, entrypoint: str) -> None:
    path = _write(tmp_path, f'training: {{entrypoint: "{entrypoint}"}}\n')
    with pytest.raises(ConfigError, match=r"training\.entrypoint.*module:function"):
        load_config(path)


def test_config_is_frozen() -> None:
    cfg = PipelineConfig()
    with pytest.raises(Exception, match="frozen"):
        cfg.project = "other"  # type: ignore[misc]


def test_training_hash_changes_with_params_and_is_stable_otherwise(tmp_path: Path) -> None:
    base = {"training": {"seed": 42, "params": {"epochs": 80, "lr": 0.003}}}
    a = parse_config(base, source="a", base_dir=tmp_path)
    same = parse_config(
        {"training": {"params": {"lr": 0.003, "epochs": 80}, "seed": 42}}, source="b", base_dir=tmp_path / "x"
    )
    more_epochs = parse_config(
        {"training": {"seed": 42, "params": {"epochs": 81, "lr": 0.003}}}, source="c", base_dir=tmp_path
    )
    other_seed = parse_config(
        {"training": {"seed": 43, "params": {"epochs": 80, "lr": 0.003}}}, source="d", base_dir=tmp_path
    )
    assert len(a.training_hash()) == 64
    # key order and the config's location are not part of the training identity
    assert a.training_hash() == same.training_hash()
    assert more_epochs.training_hash() != a.training_hash()
    assert other_seed.training_hash() != a.training_hash()
    # sections outside `training` do not change it
    other_project = parse_config({**base, "project": "x"}, source="e", base_dir=tmp_path)
    assert other_project.training_hash() == a.training_hash()


# -- settings ------------------------------------------------------------------------------------

_SETTINGS_ENV = (
    "SLIPWAY_HOME",
    "SLIPWAY_CONFIG",
    "SLIPWAY_MLFLOW_TRACKING_URI",
    "SLIPWAY_MLFLOW_ARTIFACT_LOCATION",
    "SLIPWAY_GX_DIR",
    "SLIPWAY_DATA_DOCS_DIR",
    "SLIPWAY_REPORTS_DIR",
    "MLFLOW_TRACKING_URI",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_slipway_home_env_changes_home_path(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("SLIPWAY_HOME", str(tmp_path / "state"))
    s = Settings()
    assert s.home_path() == (tmp_path / "state").resolve()
    assert s.gx_path() == (tmp_path / "state" / "gx").resolve()
    assert s.reports_path() == (tmp_path / "state" / "reports").resolve()
    assert s.data_docs_path() == (tmp_path / "state" / "data_docs").resolve()
    assert not (tmp_path / "state").exists()  # resolving a path never creates it


def test_default_home_is_dot_slipway_under_the_cwd(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.chdir(tmp_path)
    assert Settings().home_path() == (tmp_path / ".slipway").resolve()


def test_tracking_uri_precedence(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "h"
    default = Settings(home=home)
    sqlite = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    assert default.resolved_tracking_uri(env_uri=None) == sqlite
    assert default.resolved_tracking_uri(env_uri="") == sqlite
    assert default.resolved_tracking_uri(env_uri="http://env:5000") == "http://env:5000"
    explicit = Settings(home=home, mlflow_tracking_uri="http://explicit:5000")
    assert explicit.resolved_tracking_uri(env_uri="http://env:5000") == "http://explicit:5000"


def test_tracking_uri_precedence_through_the_environment(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("SLIPWAY_HOME", str(tmp_path))
    assert tracking_uri(Settings()) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking_uri(Settings()) == "http://env:5000"
    clean_env.setenv("SLIPWAY_MLFLOW_TRACKING_URI", "http://explicit:5000")
    assert tracking_uri(Settings()) == "http://explicit:5000"


def test_artifact_location_only_for_local_stores(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    local = (tmp_path.resolve() / "mlartifacts").as_uri()
    assert local.startswith("file://")
    assert s.resolved_artifact_location(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db") == local
    assert s.resolved_artifact_location(tracking_uri=f"file://{tmp_path}/mlruns") == local
    assert s.resolved_artifact_location(tracking_uri="http://mlflow:5000") is None
    assert s.resolved_artifact_location(tracking_uri="https://mlflow.example.com") is None
    explicit = Settings(home=tmp_path, mlflow_artifact_location="s3://bucket/art")
    assert explicit.resolved_artifact_location(tracking_uri="http://mlflow:5000") == "s3://bucket/art"
    assert explicit.resolved_artifact_location(tracking_uri="sqlite:///x.db") == "s3://bucket/art"


def test_the_kubernetes_hpa_needs_a_rate_or_a_cpu_target() -> None:
    from slipway.config import KubernetesDeployConfig

    assert (KubernetesDeployConfig().requests_per_pod, KubernetesDeployConfig().cpu_utilization) == (20.0, 70)
    assert KubernetesDeployConfig(cpu_utilization=None).requests_per_pod == 20.0
    with pytest.raises(ValueError, match="requests_per_pod and cpu_utilization are both null"):
        KubernetesDeployConfig(requests_per_pod=None, cpu_utilization=None)
