"""An entrypoint that declares its parameters gets them checked before the release starts, and typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

from slipway.errors import ConfigError
from slipway.evaluation.target import make_target
from slipway.examples import tabular
from slipway.training.base import TrainedModel, TrainingRequest
from slipway.training.params import call_entrypoint, check_params, params_model
from tests.support.release import prepared

SPEC = "slipway.examples.tabular:train"


def test_a_typo_or_a_mistyped_value_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as typo:
        check_params(tabular.train, {"epoch": 5}, spec=SPEC)
    assert str(typo.value).startswith("training.params.epoch:") and "epochs" in str(typo.value)
    with pytest.raises(ConfigError) as mistyped:
        check_params(tabular.train, {"epochs": "eighty"}, spec=SPEC)
    assert str(mistyped.value).startswith("training.params.epochs:") and "eighty" in str(mistyped.value)
    with pytest.raises(ConfigError) as nested:
        check_params(tabular.train, {"hidden": [64, "wide"]}, spec=SPEC)
    assert str(nested.value).startswith("training.params.hidden.1:")


def test_declared_params_fill_their_defaults_and_free_form_entrypoints_stay_free() -> None:
    typed = check_params(tabular.train, {"epochs": 3}, spec=SPEC)
    assert isinstance(typed, tabular.Params) and typed.epochs == 3 and typed.hidden == [64, 32]

    def free(request: TrainingRequest) -> TrainedModel:
        raise AssertionError("not called")

    assert params_model(free) is None
    assert check_params(free, {"anything": object()}, spec="m:free") is None


class _Knobs(BaseModel):
    depth: int = 2
    rate: float = 0.5


def test_the_entrypoint_gets_the_typed_params_and_the_request_the_checked_values() -> None:
    seen: dict[str, Any] = {}

    def typed(request: TrainingRequest, params: _Knobs) -> TrainedModel:
        seen["params"], seen["request"] = params, request.params
        return TrainedModel(module=None)

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "y": [0, 1, 0, 1]})
    request = TrainingRequest(
        frame=frame,
        features=("a",),
        label="y",
        params={"depth": 4},
        seed=0,
        target=make_target(frame["y"], task="binary")[0],
    )
    call_entrypoint(typed, request, spec="m:typed")
    assert seen["params"] == _Knobs(depth=4) and seen["request"] == {"depth": 4, "rate": 0.5}


def test_a_release_with_a_mistyped_param_fails_before_anything_runs(tmp_path: Path) -> None:
    overrides = {"training": {"entrypoint": SPEC, "params": {"epochs": "eighty"}}}
    with pytest.raises(ConfigError, match=r"^training\.params\.epochs:"):
        prepared(tmp_path, overrides=overrides)
