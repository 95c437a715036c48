"""Serve settings: env prefix, faults off by default, errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.errors import ConfigError
from slipway.serving.settings import ServeSettings, load_serve_settings


def test_faults_are_off_by_default_and_every_field_is_described() -> None:
    settings = ServeSettings()
    assert settings.faults_on() == []
    assert (
        settings.fault_output == "none" and settings.fault_error_rate == 0 and not settings.fault_never_ready
    )
    assert settings.log_predictions_path is None and settings.microbatch is False
    assert settings.max_batch_size == 1024 and settings.max_body_bytes == 1 << 20
    assert all(field.description for field in ServeSettings.model_fields.values())


def test_env_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_SERVE_FAULT_OUTPUT", "flip")
    monkeypatch.setenv("SLIPWAY_SERVE_PORT", "9000")
    settings = load_serve_settings(model=Path("m"), port=None, ort_threads=2)
    assert (settings.fault_output, settings.port, settings.ort_threads) == ("flip", 9000, 2)
    assert settings.faults_on() == ["output=flip"]
    assert load_serve_settings(port=9100).port == 9100


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLIPWAY_SERVE_FAULT_OUTPUT", "garbage"),
        ("SLIPWAY_SERVE_PORT", "x"),
        ("SLIPWAY_SERVE_LOG_SAMPLE_RATE", "2"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_serve_settings()


def test_a_worker_rebuilds_the_parents_settings_from_its_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from slipway.serving.server import settings_env

    parent = ServeSettings(
        model=tmp_path, workers=3, microbatch=True, deadline_ms=250.5, fault_output="flip", max_queue=0
    )
    for name, value in settings_env(parent).items():
        monkeypatch.setenv(name, value)
    assert ServeSettings() == parent


def test_the_pipelines_serving_workers_reach_every_deployed_arm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from slipway.config import parse_config
    from slipway.serving.settings import serve_env

    quiet = {"prediction_log": {"sink": "off"}}
    assert serve_env(parse_config({"serving": quiet}, source="t", base_dir=tmp_path)) == {}
    env = serve_env(parse_config({"serving": {**quiet, "workers": 4}}, source="t", base_dir=tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ServeSettings().workers == 4
