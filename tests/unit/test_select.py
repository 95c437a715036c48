"""Selection as a pure decision over hand-built measurements: no timing, every rule on its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slipway.config import OptimizeConfig
from slipway.optimize.candidates import Candidate
from slipway.optimize.measure import Measurement
from slipway.optimize.select import Selection, select

CFG = OptimizeConfig()  # budget 1 accuracy point, quantized must be >= 5% faster, ranked at batch 1
ROUNDS = 8


def built(name: str) -> Candidate:
    return Candidate(
        name=name, status="built", path=Path(f"{name}.onnx"), sha256=name[:1] * 64, size_bytes=10
    )


def measured(name: str, *, accuracy: float = 0.95, **per_batch: list[float]) -> Measurement:
    """Per-round p50s by batch (`b1=[...]`); every timed call of a round takes that round's p50."""
    rounds = {int(k.removeprefix("b")): v for k, v in per_batch.items()}
    return Measurement(
        name=name,
        size_bytes=10,
        load_ms=3.0,
        quality=accuracy,
        outputs=np.zeros((4, 2), dtype=np.float32),
        samples={b: [p for p in v for _ in range(5)] for b, v in rounds.items()},
        round_p50={b: list(v) for b, v in rounds.items()},
    )


BASE = measured("fp32", b1=[1.0] * ROUNDS)


def decide(
    *measurements: Measurement, cfg: OptimizeConfig = CFG, references: tuple[str, ...] = ()
) -> Selection:
    """Select among built candidates; BASE is the fp32 baseline unless an fp32 measurement is given."""
    by_name = {"fp32": BASE} | {m.name: m for m in measurements}
    candidates = [built(n) for n in by_name if n not in references]
    return select(candidates, by_name, cfg=cfg, references=references)


def test_quantized_candidate_clearly_faster_within_budget_ships() -> None:
    selection = decide(measured("int8_dynamic", accuracy=0.945, b1=[0.9] * ROUNDS))
    assert selection.shipped == "int8_dynamic"
    row = selection.row("int8_dynamic")
    assert row.eligible
    assert row.speedup_vs_fp32 == pytest.approx(1 / 0.9 - 1, abs=1e-4)
    assert row.rounds_won == f"{ROUNDS}/{ROUNDS}"
    assert row.quality_loss == pytest.approx(0.5)
    assert row.sha256 == "i" * 64
    assert selection.reasons[0].startswith("shipped int8_dynamic: fastest eligible candidate at batch 1")
    baseline = selection.row("fp32")
    assert baseline.eligible and baseline.verdict == "baseline: always eligible"


def test_drop_exactly_at_the_budget_is_within_it() -> None:
    selection = decide(measured("int8_dynamic", accuracy=0.94, b1=[0.8] * ROUNDS))
    assert selection.row("int8_dynamic").quality_loss == pytest.approx(1.0)
    assert selection.shipped == "int8_dynamic"


def test_faster_but_over_the_accuracy_budget_is_excluded_naming_drop_and_budget() -> None:
    selection = decide(measured("int8_dynamic", accuracy=0.93, b1=[0.5] * ROUNDS))
    assert selection.shipped == "fp32"
    row = selection.row("int8_dynamic")
    assert not row.eligible
    assert row.verdict == "excluded: quality loss 2.00 accuracy points > budget 1"
    assert "int8_dynamic: excluded: quality loss 2.00 accuracy points > budget 1" in selection.reasons


def test_three_percent_faster_is_excluded_by_the_five_percent_rule() -> None:
    selection = decide(measured("int8_dynamic", b1=[1 / 1.03] * ROUNDS))
    assert selection.shipped == "fp32"
    row = selection.row("int8_dynamic")
    assert not row.eligible
    assert row.rounds_won == f"{ROUNDS}/{ROUNDS}"  # won every round, by too little
    assert row.verdict == "excluded: +3.0% vs fp32 at batch 1 is below the required 5% speed-up"


def test_a_lower_speedup_threshold_lets_the_same_candidate_ship() -> None:
    cfg = CFG.model_copy(update={"min_quantized_speedup": 0.02})
    assert decide(measured("int8_dynamic", b1=[1 / 1.03] * ROUNDS), cfg=cfg).shipped == "int8_dynamic"


def test_faster_median_but_too_few_round_wins_is_noise() -> None:
    # 9 rounds: a median >= 5% faster needs >= 5 wins, so the smallest share to reject is 5/9 < 75%
    nine = measured("fp32", b1=[1.0] * 9)
    cand = measured("int8_dynamic", b1=[1 / 1.2] * 5 + [1.25] * 4)
    selection = decide(nine, cand)
    row = selection.row("int8_dynamic")
    assert row.speedup_vs_fp32 == pytest.approx(0.2, abs=1e-4)
    assert row.rounds_won == "5/9"
    assert not row.eligible
    assert row.verdict == "excluded: faster in only 5/9 interleaved rounds (noise, not a speed-up)"
    assert selection.shipped == "fp32"


def test_ties_are_not_wins() -> None:
    # 8 rounds: 4 ties and 4 big wins give a median 15% faster, from 4/8 wins
    cand = measured("int8_dynamic", b1=[1.0] * 4 + [1 / 1.3] * 4)
    row = decide(cand).row("int8_dynamic")
    assert row.speedup_vs_fp32 == pytest.approx(0.15, abs=1e-4)
    assert row.rounds_won == "4/8"
    assert not row.eligible
    assert "faster in only 4/8 interleaved rounds" in row.verdict


def test_six_of_eight_round_wins_is_enough() -> None:
    cand = measured("int8_dynamic", b1=[1 / 1.1] * 6 + [1.05] * 2)
    selection = decide(cand)
    assert selection.row("int8_dynamic").rounds_won == "6/8"
    assert selection.shipped == "int8_dynamic"


def test_the_fastest_of_several_eligible_candidates_ships() -> None:
    selection = decide(
        measured("int8_dynamic", b1=[0.8] * ROUNDS),
        measured("int8_static_qdq", b1=[0.6] * ROUNDS),
    )
    assert selection.shipped == "int8_static_qdq"
    assert selection.row("int8_dynamic").eligible


def test_the_torch_reference_is_measured_but_never_shipped_even_when_fastest() -> None:
    selection = decide(
        measured("int8_dynamic", b1=[1 / 1.03] * ROUNDS),
        measured("torch_eager", accuracy=0.96, b1=[0.1] * ROUNDS),
        references=("torch_eager",),
    )
    assert selection.shipped == "fp32"
    row = selection.row("torch_eager")
    assert row.status == "reference"
    assert not row.eligible
    assert row.speedup_vs_fp32 == pytest.approx(9.0)
    assert row.p50_ms == {1: 0.1}
    assert row.quality_loss == pytest.approx(-1.0)
    assert not any(r.startswith("torch_eager") for r in selection.reasons)


def test_unsupported_and_failed_candidates_are_in_the_table_with_their_reason() -> None:
    candidates = [
        built("fp32"),
        Candidate(
            name="int8_static_qdq", status="failed", reason="quantize:int8_static_qdq: no calibration rows"
        ),
        Candidate(name="int4_weight_only", status="unsupported", reason="0 MatMul and 3 Gemm node(s)"),
    ]
    selection = select(candidates, {"fp32": BASE}, cfg=CFG)
    assert [r.name for r in selection.rows] == ["fp32", "int8_static_qdq", "int4_weight_only"]
    failed, unsupported = selection.row("int8_static_qdq"), selection.row("int4_weight_only")
    assert (failed.status, failed.eligible) == ("failed", False)
    assert failed.verdict == "quantize:int8_static_qdq: no calibration rows"
    assert (unsupported.status, unsupported.eligible) == ("unsupported", False)
    assert unsupported.verdict == "0 MatMul and 3 Gemm node(s)"
    assert failed.p50_ms == {} and failed.quality is None
    assert "int4_weight_only: 0 MatMul and 3 Gemm node(s)" in selection.reasons
    assert selection.shipped == "fp32"


def test_without_the_fp32_baseline_there_is_no_decision() -> None:
    with pytest.raises(ValueError, match="fp32"):
        select([built("int8_dynamic")], {"int8_dynamic": measured("int8_dynamic", b1=[0.5])}, cfg=CFG)


@pytest.mark.parametrize(("rank_batch", "shipped"), [(1, "fp32"), (32, "int8_dynamic")])
def test_the_rank_batch_decides(rank_batch: int, shipped: str) -> None:
    base = measured("fp32", b1=[1.0] * ROUNDS, b32=[10.0] * ROUNDS)
    cand = measured("int8_dynamic", b1=[1.2] * ROUNDS, b32=[8.0] * ROUNDS)  # slower at 1, 25% faster at 32
    selection = decide(base, cand, cfg=CFG.model_copy(update={"rank_batch": rank_batch}))
    assert selection.rank_batch == rank_batch
    assert selection.shipped == shipped
    row = selection.row("int8_dynamic")
    assert row.p50_ms == {1: 1.2, 32: 8.0}
    assert row.speedup_vs_fp32 == pytest.approx(0.25 if rank_batch == 32 else 1 / 1.2 - 1, abs=1e-4)
