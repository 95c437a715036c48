"""The real server as a subprocess: servability passes on a true model and fails, with a cause, on a
corrupted one, one that never gets ready and one that crashes; `slipway serve` drains and exits 0 on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from slipway.config import OptimizeConfig
from slipway.data.generate import make_batch
from slipway.data.reference import Reference
from slipway.examples.breast_cancer import train
from slipway.optimize.export import export_onnx
from slipway.ports import free_port
from slipway.serving.bundle import ONNX_FILE, write_bundle
from slipway.serving.servability import check_servability, expected_answers
from slipway.training.base import TrainingRequest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bundle(ref: Reference, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example MLP (2 epochs on 48 rows), exported to ONNX as a release does, as a serving bundle."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        request = TrainingRequest(
            frame=make_batch(ref, rows=48, seed=0),
            features=ref.features,
            label=ref.label,
            params={"epochs": 2, "hidden": [8, 4]},
            seed=0,
            target=ref.target,
        )
        root = tmp_path_factory.mktemp("serving")
        x = ref.holdout_xy()[0]
        exported = export_onnx(
            train(request).module,
            example=x,
            path=root / "export" / "model.onnx",
            opset=OptimizeConfig().opset,
        )
    finally:
        torch.set_num_threads(before)
    return write_bundle(
        root / "bundle",
        onnx_path=exported.path,
        model_name="bc",
        model_version="5",
        features=list(ref.features),
        classes=[0, 1],
    )


def probs(doc: dict[str, Any]) -> np.ndarray:
    """A binary answer's probabilities (each row's object keyed by class) as a matrix in class order."""
    return np.asarray(
        [[row["probabilities"][c] for c in ("0", "1")] for row in doc["predictions"]], dtype=float
    )


@pytest.fixture(scope="module")
def holdout(ref: Reference, bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    x = ref.holdout_xy()[0]
    return x, expected_answers(bundle, x)


def test_servability_passes_on_the_true_model(bundle: Path, holdout: tuple[np.ndarray, np.ndarray]) -> None:
    x, expected = holdout
    report = check_servability(bundle, x=x, expected=expected, timeout_s=60)
    assert report.passed, report.cause
    assert report.rows == len(x) and report.max_abs_diff is not None and report.max_abs_diff <= 1e-5
    assert report.label_mismatches == 0 and report.exit_code == 0
    assert report.ready_s is not None and report.p50_latency_ms is not None
    assert report.model_version == "5" and report.summary().startswith("servability passed")


def test_servability_fails_on_flipped_outputs(bundle: Path, holdout: tuple[np.ndarray, np.ndarray]) -> None:
    x, expected = holdout
    report = check_servability(bundle, x=x, expected=expected, env={"SLIPWAY_SERVE_FAULT_OUTPUT": "flip"})
    assert not report.passed
    assert report.cause is not None and "differ from offline ONNX Runtime" in report.cause
    assert report.label_mismatches == len(x) and report.exit_code == 0


def test_servability_fails_on_a_server_that_never_gets_ready(
    bundle: Path, holdout: tuple[np.ndarray, np.ndarray]
) -> None:
    x, expected = holdout
    start = time.monotonic()
    report = check_servability(
        bundle, x=x, expected=expected, timeout_s=3, env={"SLIPWAY_SERVE_FAULT_NEVER_READY": "true"}
    )
    assert not report.passed and report.cause is not None
    assert report.cause.startswith("not ready after 3 s") and "never_ready=True" in report.cause
    assert report.rows == 0 and report.exit_code == 0
    assert time.monotonic() - start < 20


def test_servability_fails_on_a_server_that_crashes_at_start(
    bundle: Path, holdout: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not an ONNX model")
    broken = write_bundle(
        tmp_path / "broken",
        onnx_path=garbage,
        model_name="bc",
        model_version="6",
        features=[f"f{i}" for i in range(30)],
        classes=[0, 1],
    )
    x, expected = holdout
    report = check_servability(broken, x=x, expected=expected, timeout_s=30)
    assert not report.passed and report.cause is not None
    assert "server exited with code 2 before it was ready" in report.cause
    assert "onnxruntime cannot load it" in report.cause and report.exit_code == 2


def test_servability_fails_on_a_tampered_bundle(
    bundle: Path, holdout: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(bundle, tmp_path / "copy"))
    (copy / ONNX_FILE).write_bytes((copy / ONNX_FILE).read_bytes() + b"\0")
    x, expected = holdout
    report = check_servability(copy, x=x, expected=expected)
    assert not report.passed and report.cause is not None and report.cause.startswith("bad bundle:")


@pytest.fixture()
def cli_server(bundle: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`slipway serve` (the console script) with 1.5 s of injected latency, as a subprocess."""
    script = Path(sys.executable).parent / "slipway"
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "slipway.cli"]
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "serve", "--model", str(bundle), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SLIPWAY_SERVE_FAULT_LATENCY_MS": "1500"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "slipway serve not ready after 60 s"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_slipway_serve_drains_in_flight_requests_and_exits_0_on_sigterm(
    cli_server: tuple[subprocess.Popen[bytes], str], holdout: tuple[np.ndarray, np.ndarray]
) -> None:
    proc, url = cli_server
    x, expected = holdout
    answers: list[httpx.Response] = []
    in_flight = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{url}/predict", json={"instances": x[:4].tolist()}, timeout=30)
        )
    )
    in_flight.start()
    time.sleep(0.5)  # the request is inside its injected 1.5 s latency
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    assert proc.wait(timeout=15) == 0
    in_flight.join(timeout=5)
    assert time.monotonic() - start < 10
    assert answers and answers[0].status_code == 200
    np.testing.assert_allclose(probs(answers[0].json()), expected[:4], atol=1e-5)
    log = proc.stdout.read().decode() if proc.stdout else ""
    assert "Shutting down" in log and "Finished server process" in log


def _start(cmd: list[str], port: int, *, env: dict[str, str], **popen: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, **popen)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        assert time.monotonic() < deadline, "server not ready after 60 s"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def _requests_by_process(directory: Path) -> dict[str, float]:
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in directory.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        counts[path.stem] = sum(v[1] for v in values if '"slipway_requests_total"' in v[0])
    return counts


def test_two_workers_share_the_port_and_every_scrape_reports_both(
    bundle: Path, holdout: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Several workers: whichever one answers /metrics reports the server's totals (Prometheus multiprocess)."""
    x, expected = holdout
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "slipway.serving",
        "--model",
        str(bundle),
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    proc = _start(
        cmd,
        port,
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    sent = 0
    try:
        # fresh connections until both workers have answered some (bounded: 600 requests)
        while sent < 600 and sum(n > 0 for n in _requests_by_process(metrics_dir).values()) < 2:
            rows = x[sent % len(x) : sent % len(x) + 1]
            resp = httpx.post(
                f"{url}/predict", json={"instances": rows.tolist()}, headers={"connection": "close"}
            )
            assert resp.status_code == 200
            np.testing.assert_allclose(
                probs(resp.json()), expected[sent % len(x) : sent % len(x) + 1], atol=1e-5
            )
            sent += 1
        assert sum(n > 0 for n in _requests_by_process(metrics_dir).values()) == 2
        for _ in range(6):  # each scrape on a fresh connection, answered by either worker
            text = httpx.get(f"{url}/metrics", headers={"connection": "close"}).text
            assert _metric_value(text, "slipway_requests_total", status="200", model_version="5") == sent
            assert _metric_value(text, "slipway_admitted_total", model_version="5") == sent
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_a_connection_flood_past_the_file_limit_neither_floods_the_log_nor_silences_healthz(
    bundle: Path,
) -> None:
    """Open-file limit 256: 400 connections held open. /healthz still answers (an idle one makes room), the log
    stays a few lines (no accept tracebacks), and everything answers again once they are gone."""
    port = free_port()

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    cmd = [sys.executable, "-m", "slipway.serving", "--model", str(bundle), "--port", str(port)]
    proc = _start(
        cmd, port, env={}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=low_fd_limit
    )
    url = f"http://127.0.0.1:{port}"
    flood: list[socket.socket] = []
    try:
        for _ in range(400):
            with contextlib.suppress(OSError):  # refused or reset: what a client past the cap may see
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        answered = None
        deadline = time.monotonic() + 20
        while answered is None and time.monotonic() < deadline:
            try:
                answered = httpx.get(f"{url}/healthz", timeout=5).status_code
            except httpx.HTTPError:
                time.sleep(0.2)
        assert answered == 200
        refused = _metric_value(
            httpx.get(f"{url}/metrics", timeout=5).text, "slipway_connections_refused_total"
        )
        assert refused > 0  # the flood did reach the cap (set below the 256 descriptors)
        for sock in flood:
            sock.close()
        flood = []
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert httpx.post(f"{url}/predict", json={"instances": [[1.0] * 30]}, timeout=5).status_code == 200
    finally:
        for sock in flood:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    log = proc.stdout.read().decode() if proc.stdout else ""
    assert "Traceback" not in log
    assert len(log.splitlines()) < 40, log[-3000:]


def _metric_value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if not line.startswith("#") and sample == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0
