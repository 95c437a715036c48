"""The timing protocol with cheap numpy runners: what is called, how often, and what is recorded."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from slipway.optimize.measure import Measurement, Predict, Runner, measure

FEATURES = 30
BATCHES = [1, 32]
WARMUP, ROUNDS, ITERATIONS, LOAD_REPEATS = 2, 3, 4, 3
SLEEP_S = 0.002


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(50, FEATURES)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


class Recorder:
    """A runner whose loads and calls are counted; predicts class 1 when feature 0 is positive."""

    def __init__(self, name: str, *, load_s: float = 0.0, call_s: float = 0.0, flip: bool = False) -> None:
        self.name, self.load_s, self.call_s, self.flip = name, load_s, call_s, flip
        self.loads = 0
        self.calls: Counter[tuple[int, ...]] = Counter()

    def load(self) -> Predict:
        self.loads += 1
        time.sleep(self.load_s)
        return self.predict

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls[x.shape] += 1
        if self.call_s:
            time.sleep(self.call_s)
        logits = np.stack([-x[:, 0], x[:, 0]], axis=1)
        return -logits if self.flip else logits

    def runner(self, size_bytes: int | None = None) -> Runner:
        return Runner(name=self.name, load=self.load, size_bytes=size_bytes)


@pytest.fixture(scope="module")
def recorded(data: tuple[np.ndarray, np.ndarray]) -> tuple[dict[str, Measurement], dict[str, Recorder]]:
    x, y = data
    recorders = {
        "fast": Recorder("fast"),
        "slow": Recorder("slow", load_s=0.02, call_s=SLEEP_S, flip=True),
    }
    result = measure(
        [recorders["fast"].runner(size_bytes=123), recorders["slow"].runner()],
        x=x,
        y=y,
        batches=BATCHES,
        warmup=WARMUP,
        rounds=ROUNDS,
        iterations=ITERATIONS,
        load_repeats=LOAD_REPEATS,
    )
    return result, recorders


Recorded = tuple[dict[str, Measurement], dict[str, Recorder]]


def test_every_runner_is_measured_under_its_name(recorded: Recorded) -> None:
    result, _ = recorded
    assert list(result) == ["fast", "slow"]
    assert [m.name for m in result.values()] == ["fast", "slow"]
    assert (result["fast"].size_bytes, result["slow"].size_bytes) == (123, None)


@pytest.mark.parametrize("name", ["fast", "slow"])
def test_samples_are_every_timed_call_and_round_p50s_one_per_round(recorded: Recorded, name: str) -> None:
    m = recorded[0][name]
    assert sorted(m.samples) == sorted(m.round_p50) == BATCHES
    for b in BATCHES:
        assert len(m.samples[b]) == ROUNDS * ITERATIONS
        assert len(m.round_p50[b]) == ROUNDS
        assert all(s > 0 for s in m.samples[b])
        # each round's p50 is the median of that round's calls
        chunks = [m.samples[b][i * ITERATIONS : (i + 1) * ITERATIONS] for i in range(ROUNDS)]
        assert m.round_p50[b] == [pytest.approx(float(np.median(c))) for c in chunks]
        assert 0 < m.p50(b) <= m.p99(b) <= max(m.samples[b])


@pytest.mark.parametrize("name", ["fast", "slow"])
def test_protocol_loads_warms_up_then_times_each_batch_size(recorded: Recorded, name: str) -> None:
    recorder = recorded[1][name]
    assert recorder.loads == LOAD_REPEATS
    assert recorder.calls == {
        (50, FEATURES): 1,  # the scoring pass over every row
        **{(b, FEATURES): WARMUP + ROUNDS * ITERATIONS for b in BATCHES},
    }


def test_accuracy_is_scored_against_y(recorded: Recorded, data: tuple[np.ndarray, np.ndarray]) -> None:
    result, _ = recorded
    x, _ = data
    assert result["fast"].quality == 1.0
    assert result["slow"].quality == 0.0  # flipped logits: wrong on every row
    expected = np.stack([-x[:, 0], x[:, 0]], axis=1)
    assert np.array_equal(result["fast"].outputs, expected)


def test_load_and_call_times_are_measured_not_assumed(recorded: Recorded) -> None:
    result, _ = recorded
    assert result["slow"].load_ms >= 20.0
    assert result["fast"].load_ms < result["slow"].load_ms
    for b in BATCHES:
        assert result["slow"].p50(b) >= SLEEP_S * 1e3
        assert result["fast"].p50(b) < result["slow"].p50(b)


def test_each_timed_batch_has_the_batch_size_and_cycles_over_the_rows(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = data
    seen: list[np.ndarray] = []

    def load() -> Callable[[np.ndarray], np.ndarray]:
        def predict(xb: np.ndarray) -> np.ndarray:
            seen.append(xb.copy())
            return np.zeros((len(xb), 2), dtype=np.float32)

        return predict

    measure(
        [Runner(name="probe", load=load)],
        x=x,
        y=y,
        batches=[32],
        warmup=0,
        rounds=1,
        iterations=3,
        load_repeats=1,
    )
    timed = seen[1:]  # after the scoring pass
    assert [t.shape for t in timed] == [(32, FEATURES)] * 3
    assert all(t.dtype == np.float32 and t.flags["C_CONTIGUOUS"] for t in timed)
    rows = np.concatenate(timed)
    assert np.array_equal(rows, x[np.arange(96) % 50])
