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
