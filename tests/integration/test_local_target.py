"""The local target under load: real server processes, the router, the load generator (seconds each).

Given a stable v1 behind the router and a canary v2 (the same model unless a fault is injected),
when the load generator replays holdout rows, then the router's windows show the split, the
shadow pairs and the faults where they belong, and rollback/promote move every answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy.stats import binom

from slipway.config import parse_config
from slipway.data.reference import Reference
from slipway.deploy.base import DeploymentState, Observation
from slipway.deploy.loadgen import LoadGenerator, LoadStats
from slipway.deploy.local import LocalTarget
from slipway.deploy.processes import alive
from slipway.deploy.state import ProcessRecord
from slipway.serving.predlog_read import read_prediction_logs
from slipway.serving.settings import serve_env
from tests.contract.test_deploy_targets import bundles, processes_mentioning, release

pytestmark = pytest.mark.integration

__all__ = ["bundles"]  # the module-scoped fixture, shared with the contract suite

READY_S = 60.0
RATE_RPS = 50.0
LOAD_REQUESTS = 250  # ~5 s at RATE_RPS
LOAD_CAP_S = 60.0


@pytest.fixture(scope="module")
def rows(ref: Reference) -> np.ndarray:
    return ref.holdout_xy()[0]


@pytest.fixture
def target(tmp_path: Path, bundles: dict[str, Path]) -> Iterator[LocalTarget]:
    """A local deployment with stable v1 serving; everything stopped (and checked gone) after."""
    state_dir = tmp_path / "deploy"
    target = LocalTarget(state_dir=state_dir, stop_grace_s=5.0, seed=7)
    try:
        target.deploy_stable(release(bundles, "1"), ready_timeout_s=READY_S)
        yield target
    finally:
        recorded = target.processes()
        target.stop_all()
        target.close()
        assert not [p for p in recorded if alive(p)]
        assert processes_mentioning(state_dir, *bundles.values()) == []


def run_load(target: LocalTarget, rows: np.ndarray, *, requests: int = LOAD_REQUESTS) -> LoadStats:
    """Open-loop load until `requests` were sent (a stalled machine just takes longer), then every answer in."""
    url = target.router_url
    assert url is not None
    load = LoadGenerator(url=url, rows=rows, rate_rps=RATE_RPS, seed=3)
    load.start()
    load.start()  # idempotent
    deadline = time.monotonic() + LOAD_CAP_S
    while load.stats().sent < requests and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = load.stop()
    assert load.stop() == stats  # idempotent
    time.sleep(0.3)  # shadow copies finish after the client's answer
    return stats


def probe(target: LocalTarget, rows: np.ndarray, n: int = 200) -> dict[str, int]:
    """model_version of n sequential answers through the router (failures as 'error')."""
    url = target.router_url
    assert url is not None
    seen: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=5, trust_env=False) as client:
        for i in range(n):
            resp = client.post("/predict", json={"instances": [rows[i % len(rows)].tolist()]})
            key = resp.json()["model_version"] if resp.status_code == 200 else "error"
            seen[key] = seen.get(key, 0) + 1
    return seen


def start_canary(target: LocalTarget, bundles: dict[str, Path], env: dict[str, str] | None = None) -> None:
    assert target.start_canary(release(bundles, "2", env), ready_timeout_s=READY_S)


def promote_under_load(target: LocalTarget, rows: np.ndarray) -> None:
    """Promote while load runs: no request lost while swapping, and version 2 answers afterwards."""
    url = target.router_url
    assert url is not None
    load = LoadGenerator(url=url, rows=rows, rate_rps=RATE_RPS, seed=5)
    load.start()
    time.sleep(1.0)
    target.promote()
    time.sleep(1.0)
    stats = load.stop()
    assert stats.statuses == {200: stats.sent} and stats.transport_errors == 0  # nothing lost while swapping
    assert probe(target, rows) == {"2": 200}


def assert_live_split(target: LocalTarget, rows: np.ndarray, *, weight: int) -> Observation:
    """Send load at `weight`; every request answered once, by the arm the window counts, in the right share."""
    target.set_traffic(weight=weight, shadow=0)
    stats = run_load(target, rows)
    obs = target.observe(weight=weight)
    assert not obs.stale, obs.source_error
    n = obs.stable.requests + obs.canary.requests
    assert n == stats.sent == stats.statuses.get(200, 0) and n > 200
    low, high = binom.interval(0.99, n, weight / 100)
    assert low <= obs.canary.requests <= high
    assert stats.versions == {"1": obs.stable.requests, "2": obs.canary.requests}
    assert (obs.stable.errors, obs.canary.errors, obs.canary.nonfinite, obs.canary.invalid) == (0, 0, 0, 0)
    return obs


def test_the_canary_gets_its_weight_of_live_requests(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray
) -> None:
    start_canary(target, bundles)
    obs = assert_live_split(target, rows, weight=25)
    assert (
        len(obs.canary.scores) == obs.canary.requests and len(obs.canary.latencies_ms) == obs.canary.requests
    )
    assert obs.shadow_pairs == []
    # the next window starts where this one ended
    assert target.observe(weight=25).stable.requests == 0


@pytest.mark.parametrize(("env", "agree"), [({}, True), ({"SLIPWAY_SERVE_FAULT_OUTPUT": "flip"}, False)])
def test_shadow_traffic_yields_paired_outputs(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray, env: dict[str, str], agree: bool
) -> None:
    start_canary(target, bundles, env)
    target.set_traffic(weight=0, shadow=50)
    stats = run_load(target, rows)
    obs = target.observe(weight=0)
    assert not obs.stale, obs.source_error
    assert obs.canary.requests == 0 and stats.versions == {"1": stats.sent}  # mirrored, never answered
    low, high = binom.interval(0.99, obs.stable.requests, 0.5)
    assert low <= len(obs.shadow_pairs) <= high
    pairs = np.asarray(obs.shadow_pairs)
    if agree:
        assert np.abs(pairs[:, 0] - pairs[:, 1]).max() < 1e-6
    else:
        np.testing.assert_allclose(pairs[:, 1], 1.0 - pairs[:, 0], atol=1e-5)
        assert np.mean(np.abs(pairs[:, 0] - pairs[:, 1]) > 0.5) > 0.5


@pytest.mark.parametrize(
    ("env", "expect"),
    [
        ({"SLIPWAY_SERVE_FAULT_ERROR_RATE": "1.0"}, "errors"),
        ({"SLIPWAY_SERVE_FAULT_OUTPUT": "nan"}, "nonfinite"),
        ({"SLIPWAY_SERVE_FAULT_LATENCY_MS": "60"}, "latency"),
    ],
)
def test_faults_show_on_the_canary_only(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray, env: dict[str, str], expect: str
) -> None:
    start_canary(target, bundles, env)
    target.set_traffic(weight=25, shadow=0)
    stats = run_load(target, rows)
    obs = target.observe(weight=25)
    stable, canary = obs.stable, obs.canary
    assert not obs.stale, obs.source_error
    assert canary.requests > 30
    assert (stable.errors, stable.nonfinite, stable.invalid) == (0, 0, 0)
    assert len(stable.scores) == stable.requests
    if expect == "errors":
        assert canary.errors == canary.requests == stats.statuses[503]
    elif expect == "nonfinite":
        assert canary.nonfinite == canary.requests and canary.scores == [] and canary.errors == 0
    else:
        assert np.median(canary.latencies_ms) > 60 > np.median(stable.latencies_ms) + 30


def test_after_rollback_the_stable_answers(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray
) -> None:
    start_canary(target, bundles, {"SLIPWAY_SERVE_FAULT_ERROR_RATE": "0.5"})
    target.set_traffic(weight=50, shadow=50)
    canary = next(p for p in target.processes() if p.role == "canary")
    target.rollback()
    seen = probe(target, rows)
    assert seen.get("1", 0) >= 0.99 * sum(seen.values())
    assert not alive(canary)


def test_a_canary_deployed_with_the_pipelines_env_logs_its_predictions_where_the_config_says(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray, tmp_path: Path
) -> None:
    raw = {"registry": {"model_name": "tiny"}, "serving": {"prediction_log": {"sample_rate": 1.0}}}
    cfg = parse_config(raw, source="slipway.yaml", base_dir=tmp_path)
    start_canary(target, bundles, serve_env(cfg))
    target.set_traffic(weight=100, shadow=0)
    assert probe(target, rows, n=40) == {"2": 40}
    target.rollback()  # SIGTERM: the canary writes what it has queued as it exits
    assert cfg.prediction_log_path() == tmp_path / ".slipway" / "predictions" / "tiny.jsonl"
    got = read_prediction_logs([cfg.prediction_log_path()], model_name="tiny", n_features=rows.shape[1])
    assert (got.counts.read, got.counts.skipped_torn, got.counts.schema_mismatch) == (40, 0, 0)
    assert got.model_versions == ["2"] * 40 and len(set(got.request_ids)) == 40
    np.testing.assert_allclose(got.rows, rows[:40], rtol=1e-6)


def test_promote_moves_every_answer_without_downtime(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray
) -> None:
    start_canary(target, bundles)
    target.set_traffic(weight=50, shadow=0)
    old_stable = next(p for p in target.processes() if p.role == "stable")
    promote_under_load(target, rows)
    assert not alive(old_stable)
    assert target.state() == DeploymentState(release(bundles, "2"), None, 0, 0, canary_ready=False)


def test_a_killed_orchestrator_leaves_no_canary_behind(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray
) -> None:
    """The orchestrator is SIGKILLed while it waits for a slow canary; the next run reconciles."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from slipway.deploy.base import ModelRelease
        from slipway.deploy.local import LocalTarget
        target = LocalTarget(state_dir=Path({str(target.state_dir)!r}))
        env = {{"SLIPWAY_SERVE_FAULT_SLOW_START_S": "60"}}
        target.start_canary(ModelRelease("tiny", "2", Path({str(bundles["2"])!r}), env=env), ready_timeout_s=120)
        """
    )
    orchestrator = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 30
    while not any(p.role == "canary" for p in target.processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(orchestrator.pid, signal.SIGKILL)
    orchestrator.wait()
    canary = next(p for p in target.processes() if p.role == "canary")
    assert alive(canary)  # it outlived its orchestrator, but gets no traffic
    again = LocalTarget(state_dir=target.state_dir)
    state = again.state()
    assert (state.canary is not None, state.canary_ready, state.weight, state.shadow) == (True, False, 0, 0)
    assert probe(target, rows, n=50) == {"1": 50}
    again.rollback()
    again.close()
    assert not alive(canary)
    assert again.state().canary is None


def test_a_canary_whose_release_was_killed_falls_back_to_the_stable_when_its_lease_runs_out(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray
) -> None:
    """The release is SIGKILLed while its canary takes all the traffic; the router alone stops sending it any."""
    lease_s = 4.0
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from slipway.deploy.base import ModelRelease
        from slipway.deploy.local import LocalTarget
        target = LocalTarget(state_dir=Path({str(target.state_dir)!r}))
        assert target.start_canary(ModelRelease("tiny", "2", Path({str(bundles["2"])!r})), ready_timeout_s=60)
        target.hold_canary(ttl_s={lease_s})
        target.set_traffic(weight=100, shadow=0)
        print("canary live", flush=True)
        while True:
            time.sleep(1)  # a controller would renew here; this one is killed first
        """
    )
    release = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert release.stdout is not None and release.stdout.readline().strip() == "canary live"
    killed_at = time.monotonic()
    os.killpg(release.pid, signal.SIGKILL)
    release.wait()
    assert probe(target, rows, n=20) == {"2": 20}  # the lease still runs
    time.sleep(max(0.0, lease_s - (time.monotonic() - killed_at)) + 0.5)
    assert probe(target, rows, n=50) == {"1": 50}  # no release renewed it: the stable answers everything
    state = LocalTarget(state_dir=target.state_dir).state()
    assert (state.canary is not None, state.weight, state.canary_unattended) == (True, 0, True)
    target.rollback()  # what `slipway rollback` (or the next release's reconcile) does with it
    assert target.state().canary is None


def test_the_router_keeps_its_url_across_deploy_stop_and_redeploy(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray
) -> None:
    before = target.router_url
    assert before is not None
    target.stop_all()
    assert target.router_url is None
    target.deploy_stable(release(bundles, "1"), ready_timeout_s=READY_S)
    assert target.router_url == before  # clients configured with the old URL keep working
    assert probe(target, rows, n=20) == {"1": 20}


def restarted(target: LocalTarget, old: ProcessRecord, *, timeout_s: float = 20.0) -> ProcessRecord:
    """The live record of `old`'s role once the supervisor started it again (a new pid)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = next((p for p in target.processes() if p.role == old.role), None)
        if now is not None and now.pid != old.pid and alive(now):
            return now
        time.sleep(0.05)
    raise AssertionError(f"the {old.role} (pid {old.pid}) was not restarted within {timeout_s} s")


def answered(target: LocalTarget, rows: np.ndarray, *, version: str, timeout_s: float = 30.0) -> float:
    """Seconds until the router answers from `version` again."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(httpx.TransportError):  # the router itself may not listen yet
            if probe(target, rows, n=1) == {version: 1}:
                break
        assert time.monotonic() - start < timeout_s, f"no answer from version {version} within {timeout_s} s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_a_killed_router_is_restarted_on_its_port_without_anyone_calling(
    target: LocalTarget, bundles: dict[str, Path], rows: np.ndarray
) -> None:
    start_canary(target, bundles)
    router = next(p for p in target.processes() if p.role == "router")
    os.kill(router.pid, signal.SIGKILL)
    new = restarted(target, router)
    assert (new.port, new.restarts) == (router.port, 1)  # clients keep the router's URL
    print(f"\nrouter answers again {answered(target, rows, version='1'):.2f} s after its restart was seen")
    target.set_traffic(weight=10, shadow=0)
    assert sum(probe(target, rows, n=50).values()) == 50
    assert not target.observe(weight=10).stale
    assert target.observe(weight=30).stale  # the router routes 10%, not the 30% asked
    health = {h.name: h for h in target.health()}
    assert (health["router"].state, health["router"].restarts) == ("ready", 1)


def test_a_killed_stable_is_restarted_on_its_port_and_serves_again(
    target: LocalTarget, rows: np.ndarray
) -> None:
    stable = next(p for p in target.processes() if p.role == "stable")
    os.kill(stable.pid, signal.SIGKILL)
    new = restarted(target, stable)
    assert (new.port, new.restarts, new.release) == (stable.port, 1, stable.release)
    print(f"\nstable answers again {answered(target, rows, version='1'):.2f} s after its restart was seen")
    assert probe(target, rows, n=50) == {"1": 50}
    health = {h.name: (h.state, h.restarts) for h in target.health()}
    assert health == {"router": ("ready", 0), "stable": ("ready", 1), "supervisor": ("running", 0)}


def test_a_killed_supervisor_is_restarted_by_the_router_and_heals_again(
    target: LocalTarget, rows: np.ndarray
) -> None:
    supervisor = next(p for p in target.processes() if p.role == "supervisor")
    os.kill(supervisor.pid, signal.SIGKILL)
    restarted(target, supervisor)  # the router saw it gone and started another, which recorded itself
    stable = next(p for p in target.processes() if p.role == "stable")
    os.kill(stable.pid, signal.SIGKILL)
    assert restarted(target, stable).port == stable.port
    answered(target, rows, version="1")


def test_a_dead_canary_is_not_restarted(target: LocalTarget, bundles: dict[str, Path]) -> None:
    start_canary(target, bundles)
    canary = next(p for p in target.processes() if p.role == "canary")
    os.kill(canary.pid, signal.SIGKILL)
    with pytest.raises(AssertionError, match="not restarted"):
        restarted(target, canary, timeout_s=3.0)  # its death is evidence for its release, not hidden
    assert target.state().canary is None
