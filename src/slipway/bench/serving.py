"""`make bench`, serving part: /predict throughput against a bare uvicorn hello-world, and micro-batching.

Every server runs as its own subprocess with the same uvicorn setup (`serve_asgi`: one worker) and
is driven by the same closed-loop generator (`slipway.bench.loadgen`) with the same request stream:
batch-1 POSTs of holdout rows (the hello-world reads and ignores them). Ratios come from one run
each, on this machine; the model is the shipped example MLP, exported and bundled as a release does.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from slipway.bench.loadgen import run_load

PREDICT_OVER_HELLO_TARGET = 0.5  # issue 4: /predict rps at least half a bare hello-world's
P99_OVER_P50_TARGET = 3.0
HEADLINE_KEYS = ("predict_over_hello_rps", "p99_over_p50", "microbatch_on_over_off_rps", "image_size_mb")
RUNS = ("hello", "predict", "predict_microbatch")
HOST = "127.0.0.1"


@dataclass(frozen=True)
class LoadProtocol:
    """How each server is loaded: fixed concurrency, warm-up, then a measured window."""

    concurrency: int = 16
    warmup_s: float = 2.0
    duration_s: float = 10.0
    microbatch_max_batch: int = 64
    microbatch_max_wait_ms: float = 1.0


def protocol(*, quick: bool) -> LoadProtocol:
    """Pure; 2 s warm-up and 10 s per server; `quick` shrinks both so tests check the plumbing."""
    return LoadProtocol(warmup_s=0.3, duration_s=1.0) if quick else LoadProtocol()


def build_bundle(dst: Path, *, config_path: Path) -> tuple[Path, np.ndarray]:
    """Blocking (seconds; imports torch); the shipped example MLP trained, exported and bundled; its holdout rows."""
    import torch

    from slipway.bench.optimize import shipped_mlp
    from slipway.config import PipelineConfig, load_config
    from slipway.optimize.export import export_onnx
    from slipway.serving.bundle import write_bundle

    cfg = load_config(config_path) if config_path.is_file() else PipelineConfig()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = shipped_mlp(config_path=config_path)
        exported = export_onnx(
            model.module,
            example=model.holdout_x,
            path=dst / "export" / "model.onnx",
            opset=cfg.optimize.opset,
        )
    finally:
        torch.set_num_threads(before)
    from slipway.data.reference import load_reference

    features = list(load_reference(cfg.data, base_dir=cfg.base_dir).features)
    bundle = write_bundle(
        dst / "bundle",
        onnx_path=exported.path,
        model_name=cfg.registry.model_name,
        model_version="bench",
        features=features,
        classes=sorted({int(v) for v in model.holdout_y}),
    )
    return bundle, model.holdout_x


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (Linux /proc), None elsewhere."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.is_file():
        return None
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], *, timeout_s: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"http://{HOST}:{port}{path}", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {timeout_s:g} s")


def load_server(
    cmd: list[str],
    *,
    ready_path: str,
    bodies: list[bytes],
    proto: LoadProtocol,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Blocking; starts one server subprocess, loads it per `proto`, stops it with SIGTERM; its numbers."""
    from slipway.bench.loadgen import post_json_request
    from slipway.ports import free_port

    port = free_port()
    requests = [post_json_request(HOST, port, "/predict", body) for body in bodies]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            _wait_ready(port, ready_path, proc)
            cpu0 = _cpu_seconds(proc.pid)
            result = asyncio.run(
                run_load(
                    host=HOST,
                    port=port,
                    requests=requests,
                    concurrency=proto.concurrency,
                    warmup_s=proto.warmup_s,
                    duration_s=proto.duration_s,
                )
            )
            cpu1 = _cpu_seconds(proc.pid)
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-2000:])
            raise
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    doc: dict[str, Any] = result.summary() | {"statuses": {str(k): v for k, v in result.statuses.items()}}
    # the server's CPU over warm-up + window, per request completed in the window: a rough cost figure
    cpu = None if cpu0 is None or cpu1 is None or not result.requests else (cpu1 - cpu0) / result.requests
    return doc | {
        "server_cpu_us_per_request": None if cpu is None else round(cpu * 1e6, 1),
        "exit_code": proc.returncode,
    }


def image_size(results_dir: Path) -> tuple[float | None, str | None]:
    """Blocking (reads a file); the serving image size in MB from a colleague's image.json, or None and why."""
    path = results_dir / "image.json"
    if not path.is_file():
        return None, f"{path} not found: the image benchmark has not run on this machine"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable ({exc})"
    if not isinstance(doc, dict) or "image_size_mb" not in doc:
        return None, f"{path} has no image_size_mb key"
    value = doc["image_size_mb"]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), None
    return None, f"{path} has image_size_mb null: {doc.get('reason') or 'no reason given'}"


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or not den or math.isnan(num) or math.isnan(den):
        return None
    return round(num / den, 4)


def machine_facts() -> dict[str, Any]:
    """Blocking (reads /proc/cpuinfo); CPU, cores and the serving stack's versions."""
    from importlib.metadata import PackageNotFoundError, version

    cpuinfo = Path("/proc/cpuinfo")
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    versions: dict[str, str | None] = {}
    for dist in ("fastapi", "starlette", "uvicorn", "h11", "httptools", "uvloop", "onnxruntime", "numpy"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {
        "cpu": model,
        "cores": cores,
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run(out_dir: Path, *, quick: bool = False, config_path: Path = Path("slipway.yaml")) -> dict[str, Any]:
    """Blocking (~1 min; quick: ~15 s); benches the three servers, writes serving.json/.md to out_dir, returns the JSON."""
    started = time.perf_counter()
    proto = protocol(quick=quick)
    load_before = machine_facts()["load_average_1m"]
    bundle, holdout = build_bundle(out_dir / "serving", config_path=config_path)
    bodies = [json.dumps({"instances": [row]}).encode() for row in holdout.tolist()]
    py = sys.executable
    serve = [py, "-m", "slipway.serving", "--model", str(bundle), "--host", HOST]
    mb_env = {
        "SLIPWAY_SERVE_MICROBATCH_MAX_BATCH": str(proto.microbatch_max_batch),
        "SLIPWAY_SERVE_MICROBATCH_MAX_WAIT_MS": str(proto.microbatch_max_wait_ms),
    }
    runs = {
        "hello": load_server(
            [py, "-m", "slipway.bench.hello", "--host", HOST], ready_path="/", bodies=bodies, proto=proto
        ),
        "predict": load_server([*serve, "--no-microbatch"], ready_path="/readyz", bodies=bodies, proto=proto),
        "predict_microbatch": load_server(
            [*serve, "--microbatch"], ready_path="/readyz", bodies=bodies, proto=proto, env=mb_env
        ),
    }
    hello, predict, micro = (runs[k] for k in RUNS)
    size_mb, size_reason = image_size(out_dir)
    head = {
        "predict_over_hello_rps": _ratio(predict["rps"], hello["rps"]),
        "p99_over_p50": _ratio(predict["p99_ms"], predict["p50_ms"]),
        "microbatch_on_over_off_rps": _ratio(micro["rps"], predict["rps"]),
        "image_size_mb": size_mb,
    }
    cpu_ratio = _ratio(hello["server_cpu_us_per_request"], predict["server_cpu_us_per_request"])
    doc: dict[str, Any] = {
        **head,
        **({"image_size_mb_reason": size_reason} if size_reason else {}),
        "targets": {
            "predict_over_hello_rps": {
                "target": f">= {PREDICT_OVER_HELLO_TARGET:g}",
                "met": head["predict_over_hello_rps"] is not None
                and head["predict_over_hello_rps"] >= PREDICT_OVER_HELLO_TARGET,
            },
            "p99_over_p50": {
                "target": f"<= {P99_OVER_P50_TARGET:g}",
                "met": head["p99_over_p50"] is not None and head["p99_over_p50"] <= P99_OVER_P50_TARGET,
            },
        },
        # hello's server CPU per request over /predict's: the rps ratio if each server had a core to itself
        "server_cpu_hello_over_predict": cpu_ratio,
        "quick": quick,
        "protocol": asdict(proto)
        | {
            "request": "POST /predict, one holdout row per request (the hello-world reads and ignores the body)",
            "generator": "closed loop, keep-alive, raw asyncio streams, one process",
            "servers": "one subprocess each, uvicorn 1 worker via slipway.serving.server.serve_asgi, ORT 1 thread",
        },
        "runs": runs,
        "machine": machine_facts() | {"load_average_1m_before": load_before},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "serving.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    (out_dir / "serving.md").write_text(render_markdown(doc))
    return doc


def _fmt(value: Any, spec: str = ".3g") -> str:
    return "—" if value is None else format(value, spec)


def render_markdown(doc: dict[str, Any]) -> str:
    """Pure; the serving benchmark as markdown: headline vs targets, then one row per server."""
    t, m, p = doc["targets"], doc["machine"], doc["protocol"]

    def verdict(key: str) -> str:
        return f"{t[key]['target']} | {'met' if t[key]['met'] else '**missed**'}"

    lines = [
        "# Serving benchmark" + (" (quick: numbers are not meaningful)" if doc["quick"] else ""),
        "",
        f"* machine: {m['cpu']}, {m['cores']} usable cores, load average {m['load_average_1m_before']} "
        f"before / {m['load_average_1m']} after; uvicorn {m['uvicorn']} (h11 {m['h11']}, httptools "
        f"{m['httptools'] or 'absent'}, uvloop {m['uvloop'] or 'absent'}), fastapi {m['fastapi']}, "
        f"onnxruntime {m['onnxruntime']}; {m['timestamp']}",
        f"* protocol: concurrency {p['concurrency']}, warm-up {p['warmup_s']} s, window {p['duration_s']} s "
        f"per server; {p['request']}; {p['generator']}; {p['servers']}; micro-batching max batch "
        f"{p['microbatch_max_batch']}, max wait {p['microbatch_max_wait_ms']} ms; wall {doc['wall_s']} s",
        "",
        "| ratio | value | target | |",
        "|---|---|---|---|",
        f"| /predict rps ÷ hello-world rps | {_fmt(doc['predict_over_hello_rps'])} | {verdict('predict_over_hello_rps')} |",
        f"| /predict p99 ÷ p50 | {_fmt(doc['p99_over_p50'])} | {verdict('p99_over_p50')} |",
        f"| hello-world ÷ /predict server CPU per request | {_fmt(doc['server_cpu_hello_over_predict'])} | — | |",
        f"| micro-batching on ÷ off, rps at concurrency {p['concurrency']} | {_fmt(doc['microbatch_on_over_off_rps'])} | — | |",
        f"| serving image size (MB) | {_fmt(doc['image_size_mb'], '.1f')} | — | {doc.get('image_size_mb_reason', '')} |",
        "",
        "| server | rps | p50 ms | p90 ms | p99 ms | requests | non-200 | server CPU µs/request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in doc["runs"].items():
        lines.append(
            f"| {name} | {_fmt(run['rps'], '.0f')} | {_fmt(run['p50_ms'])} | {_fmt(run['p90_ms'])} "
            f"| {_fmt(run['p99_ms'])} | {run['requests']} | {run['errors']} | {_fmt(run['server_cpu_us_per_request'], '.0f')} |"
        )
    return "\n".join([*lines, ""])
