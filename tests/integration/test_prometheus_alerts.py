"""The shipped alert rules in a real Prometheus, scraping a real model server and a real node_exporter.

Prometheus runs the shipped `infra/monitoring/prometheus/alerts.yml` with one documented change
(`tests.support.prometheus.shortened_rules`): every range `[5m]`-style window becomes `[10s]` and every
`for:` becomes `2s`, with a 1 s scrape and evaluation interval (the config is the shipped example's,
pointed at loopback targets). Thresholds, expressions and labels are the production ones.

* A server started with injected faults (`slipway.serving.faults.fault_env`: half the answers 503, every
  output NaN) fires the error-rate and non-finite alerts; the same port then served without faults, under
  the same traffic, resolves both.
* The monitor's gauges as its run writes them (`slipway.monitoring.report`), read by node_exporter's textfile
  collector, fire the drift, quality and staleness alerts; a healthy run written over them resolves them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from slipway.data.reference import Reference
from slipway.monitoring.report import metrics_text, write_atomic
from slipway.ports import free_port
from slipway.serving.bundle import write_bundle
from slipway.serving.faults import fault_env
from tests.support.onnx_models import linear_onnx
from tests.support.prometheus import (
    ALERTS,
    PROMETHEUS_CONFIG,
    alert_state,
    alerts,
    loopback_config,
    node_exporter,
    node_exporter_path,
    prometheus,
    query,
    shortened_rules,
    wait_for,
)
from tests.support.servers import clean_env, stop, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW, HOLD = "10s", "2s"  # every rule's range window and `for:` in these tests
MODEL, VERSION = "tiny", "3"
ALERT_TIMEOUT_S = 40.0


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary on PATH: apt-get install prometheus (.ci/run installs it)")
    return binary


@pytest.fixture(scope="module")
def bundle(ref: Reference, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear two-class ONNX model over the breast-cancer features, as a serving bundle."""
    root = tmp_path_factory.mktemp("prometheus-bundle")
    rng = np.random.default_rng(0)
    onnx_path = linear_onnx(
        root / "src" / "model.onnx",
        weights=rng.normal(size=(len(ref.features), 2)).astype(np.float32) / 10,
        bias=np.zeros(2, dtype=np.float32),
    )
    return write_bundle(
        root / "bundle",
        onnx_path=onnx_path,
        model_name=MODEL,
        model_version=VERSION,
        features=list(ref.features),
        classes=[0, 1],
    )


def short_rules(folder: Path) -> Path:
    """The shipped rules with test windows, written to `folder`."""
    path = folder / "alerts.yml"
    rules = shortened_rules(yaml.safe_load(ALERTS.read_text()), window=WINDOW, hold=HOLD)
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def config_for(folder: Path, targets: dict[str, str]) -> dict[str, object]:
    shipped = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return loopback_config(shipped, rules=short_rules(folder), targets=targets, model=MODEL)


@contextmanager
def model_server(bundle: Path, port: int, *, env: dict[str, str], log: Path) -> Iterator[None]:
    """Blocking until /readyz answers 200; `python -m slipway.serving` on 127.0.0.1:port; stopped on exit."""
    cmd = [sys.executable, "-m", "slipway.serving", "--model", str(bundle)]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        env={**clean_env(), **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=60, proc=proc, log=log)
        yield
    finally:
        stop(proc, grace_s=15)


@contextmanager
def traffic(url: str, rows: np.ndarray) -> Iterator[Counter[int]]:
    """Non-blocking; a thread posting 4 rows to /predict every ~20 ms until exit; yields the answers' status
    counts (0: no answer, while a server restarts)."""
    statuses: Counter[int] = Counter()
    done = threading.Event()
    body = {"instances": rows[:4].tolist()}

    def send() -> None:
        with httpx.Client(timeout=5) as client:
            while not done.wait(0.02):  # pacing: about 40 requests per second
                try:
                    statuses[client.post(f"{url}/predict", json=body).status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        done.set()
        thread.join(timeout=10)


def states(url: str, expected: dict[str, dict[str, str]]) -> dict[str, str]:
    """Blocking; each alert name's state for its labels."""
    return {name: alert_state(url, name, **labels) for name, labels in expected.items()}


def test_error_rate_and_nonfinite_alerts_fire_on_a_faulty_server_and_resolve_when_it_serves_well(
    prometheus_binary: str, bundle: Path, holdout_x: np.ndarray, tmp_path: Path
) -> None:
    port = free_port()
    served = {"model": MODEL, "model_version": VERSION, "severity": "critical"}
    expected = {"SlipwayHighErrorRate": served, "SlipwayNonFiniteOutputs": served}
    faulty = {**fault_env("errors"), **fault_env("nan"), "SLIPWAY_SERVE_FAULT_SEED": "0"}
    config = config_for(tmp_path, {"slipway-serving": f"127.0.0.1:{port}"})
    log = tmp_path / "server.log"

    with (
        prometheus(prometheus_binary, config, workdir=tmp_path / "prometheus") as prom,
        traffic(f"http://127.0.0.1:{port}", holdout_x) as statuses,
    ):
        with model_server(bundle, port, env=faulty, log=log):
            wait_for(
                lambda: set(states(prom, expected).values()) == {"firing"},
                timeout_s=ALERT_TIMEOUT_S,
                explain=lambda: f"alerts {alerts(prom)}; answers {dict(statuses)}",
            )
        assert statuses[503] > 0 and statuses[200] > 0

        with model_server(bundle, port, env={}, log=log):
            answered_before = statuses[200]
            wait_for(
                lambda: set(states(prom, expected).values()) == {"inactive"},
                timeout_s=ALERT_TIMEOUT_S,
                explain=lambda: f"alerts {alerts(prom)}; answers {dict(statuses)}",
            )
            # resolved under healthy traffic, not for want of data
            assert statuses[200] > answered_before
            ok = query(prom, f'sum(rate(slipway_requests_total{{status="200"}}[{WINDOW}]))')
            assert ok and float(ok[0]["value"][1]) > 0
            assert not query(prom, f"sum(increase(slipway_nonfinite_outputs_total[{WINDOW}])) > 0")


def write_monitor_gauges(folder: Path, *, drifted_columns: int, breach: bool, last_run: float) -> None:
    """What a monitor run writes: its gauges (`slipway.monitoring.report.metrics_text`), atomically, as the
    `.prom` file node_exporter's textfile collector reads."""
    text = metrics_text(
        model_name=MODEL,
        version=VERSION,
        drift=drifted_columns > 0,
        drifted=drifted_columns,
        breach=breach,
        now=last_run,
    )
    write_atomic(folder / "slipway_monitor.prom", text)


def test_monitor_alerts_fire_from_its_textfile_gauges_and_resolve_after_a_healthy_run(
    prometheus_binary: str, tmp_path: Path
) -> None:
    binary = node_exporter_path()
    if binary is None:
        pytest.skip(
            "no node_exporter on PATH: apt-get install prometheus-node-exporter (.ci/run installs it)"
        )
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    monitored = {"model": MODEL, "version": VERSION}
    expected = {
        "SlipwayDataDrift": {**monitored, "severity": "warning"},
        "SlipwayQualityBreach": {**monitored, "severity": "critical"},
        "SlipwayMonitorStale": {"model": MODEL, "severity": "warning"},
    }
    write_monitor_gauges(textfiles, drifted_columns=4, breach=True, last_run=time.time() - 4 * 3600)

    with node_exporter(binary, textfile_dir=textfiles, workdir=tmp_path) as address:
        config = config_for(tmp_path, {"slipway-monitor": address})
        with prometheus(prometheus_binary, config, workdir=tmp_path / "prometheus") as prom:
            wait_for(
                lambda: set(states(prom, expected).values()) == {"firing"},
                timeout_s=ALERT_TIMEOUT_S,
                explain=lambda: f"alerts {alerts(prom)}",
            )
            write_monitor_gauges(textfiles, drifted_columns=0, breach=False, last_run=time.time())
            wait_for(
                lambda: set(states(prom, expected).values()) == {"inactive"},
                timeout_s=ALERT_TIMEOUT_S,
                explain=lambda: f"alerts {alerts(prom)}",
            )
