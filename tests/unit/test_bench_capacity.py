"""The serving bench's capacity window: measured again (longer) when nothing succeeded, a named error after."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from slipway.bench import serving
from slipway.bench.openloop import run_open_loop


def _windows(monkeypatch: pytest.MonkeyPatch, rps: list[float]) -> list[float]:
    seen: list[float] = []

    def closed_loop(
        proc: Any, port: int, *, bodies: list[bytes], proto: serving.LoadProtocol
    ) -> dict[str, Any]:
        seen.append(proto.duration_s)
        value = rps[len(seen) - 1]
        return {
            "rps": value,
            "window_s": proto.duration_s,
            "statuses": {"503": 9} if not value else {"200": 5},
            "requests": 9,
        }

    monkeypatch.setattr(serving, "closed_loop", closed_loop)
    return seen


def test_a_window_without_success_is_measured_again_twice_as_long(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _windows(monkeypatch, [0.0, 0.0, 42.0])
    doc = serving.capacity_run(None, 1, bodies=[], proto=serving.protocol(quick=True))  # type: ignore[arg-type]
    assert doc["rps"] == 42.0 and seen == [1.0, 2.0, 4.0]


def test_no_success_in_any_window_names_the_statuses(monkeypatch: pytest.MonkeyPatch) -> None:
    _windows(monkeypatch, [0.0] * serving.CAPACITY_TRIES)
    with pytest.raises(RuntimeError, match="503"):
        serving.capacity_run(None, 1, bodies=[], proto=serving.protocol(quick=True))  # type: ignore[arg-type]


def test_an_open_loop_at_no_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_rps"):
        asyncio.run(
            run_open_loop(
                host="127.0.0.1", port=1, requests=[b""], rate_rps=0.0, warmup_s=0.0, duration_s=1.0
            )
        )
