"""Whether small calls run on the event loop is the model's own cost, not the machine's load at warm-up."""

from __future__ import annotations

from slipway.serving.service import WARMUP_ROWS, inline_rows


def test_a_model_timed_on_a_busy_machine_decides_as_on_a_quiet_one() -> None:
    quiet = [0.08] * 20
    busy = [0.08] * 5 + [3.0] * 15  # preempted on most calls: the median is 3 ms
    assert inline_rows(quiet, inline_max_ms=0.5) == inline_rows(busy, inline_max_ms=0.5) == WARMUP_ROWS


def test_a_model_slower_than_the_limit_runs_off_the_loop() -> None:
    assert inline_rows([0.9] * 20, inline_max_ms=0.5) == 0
    assert inline_rows([], inline_max_ms=0.5) == 0
