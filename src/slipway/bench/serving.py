"""`make bench`, serving part: /predict against a bare ASGI hello-world, micro-batching, the previous
stack, and overload.

Every server runs as its own subprocess with one worker and is driven by the same closed-loop
generator (`slipway.bench.loadgen`) with the same request stream: batch-1 POSTs of holdout rows (the
hello-world reads and ignores them). The hello-world runs on every stack measured
(`slipway.bench.stacks`: Slipway's, stock uvicorn on h11 + asyncio, granian) and the FASTEST is the
baseline. Overload: an open-loop generator (`slipway.bench.openloop`) offers 2x and 4x the measured
/predict capacity to a server with the default limits. Ratios come from one run each, on this
machine; the model is the shipped example MLP, exported and bundled as a release does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from slipway.bench.loadgen import run_load
from slipway.bench.openloop import OpenLoopResult, run_open_loop
from slipway.bench.stacks import STACKS, granian_command

PREDICT_OVER_HELLO_TARGET = 0.7  # issue 17: /predict rps at least 0.7 of the fastest bare hello-world's
P99_OVER_P50_TARGET = 3.0
GOODPUT_TARGET = 0.9  # at 2x and 4x the capacity, 200s within the deadline per second over capacity
RSS_GROWTH_TARGET = 0.10
HEADLINE_KEYS = (
    "predict_over_hello_rps",
    "p99_over_p50",
    "microbatch_on_over_off_rps",
    "image_size_mb",
    "hello_server",
    "predict_rps",
    "previous_stack_predict_rps",
    "overload",
)
HELLO_RUNS = tuple(f"hello_{stack}" for stack in STACKS)
RUNS = (*HELLO_RUNS, "predict", "predict_microbatch", "predict_previous_stack")
OVERLOADS = (2, 4)
HOST = "127.0.0.1"


@dataclass(frozen=True)
class LoadProtocol:
    """How each server is loaded: fixed concurrency, warm-up, then a measured window."""

    concurrency: int = 16
    warmup_s: float = 2.0
    duration_s: float = 10.0
    microbatch_max_batch: int = 64
    microbatch_max_wait_ms: float = 1.0
    overload_warmup_s: float = 1.0
    overload_duration_s: float = 8.0
    overload_timeout_s: float = (
        5.0  # a request unanswered this long after its scheduled time is a client timeout
    )
    overload_max_connections: int = 1024  # the open-loop generator's clients


def protocol(*, quick: bool) -> LoadProtocol:
    """Pure; 2 s warm-up and 10 s per server, 8 s per overload; `quick` shrinks them so tests check the plumbing."""
    if quick:
        return LoadProtocol(warmup_s=0.3, duration_s=1.0, overload_warmup_s=0.3, overload_duration_s=1.0)
    return LoadProtocol()


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
    """User + system CPU of a process and its children alive now (Linux /proc: granian works in a child), None elsewhere."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.is_file():
        return None
    total = 0.0
    for path in Path("/proc").glob("[0-9]*/stat"):  # the process itself is one of them
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if path.parent.name == str(pid) or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (Linux /proc), None elsewhere."""
    status = Path(f"/proc/{pid}/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return None


@contextlib.contextmanager
def started_server(
    cmd: list[str], *, ready_path: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Blocking; one server subprocess (`cmd --port N`) ready on loopback; SIGTERM (then kill) after the block."""
    import httpx

    from slipway.ports import free_port
    from slipway.readiness import stop_popen, wait_http_ok

    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            with httpx.Client() as client:
                ready_s, why = wait_http_ok(
                    client,
                    f"http://{HOST}:{port}{ready_path}",
                    exited=lambda: (
                        None if proc.poll() is None else f"server exited with code {proc.returncode}"
                    ),
                    timeout_s=60.0,
                )
            if ready_s is None:
                raise RuntimeError(f"server not ready: {why}")
            yield proc, port
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-2000:])
            raise
        finally:
            stop_popen(proc, grace_s=15.0)


def _requests(port: int, bodies: list[bytes]) -> list[bytes]:
    from slipway.bench.loadgen import post_json_request

    return [post_json_request(HOST, port, "/predict", body) for body in bodies]


def closed_loop(
    proc: subprocess.Popen[bytes], port: int, *, bodies: list[bytes], proto: LoadProtocol
) -> dict[str, Any]:
    """Blocking; the closed-loop protocol against a ready server: rps, latency percentiles, CPU per request."""
    cpu0 = _cpu_seconds(proc.pid)
    result = asyncio.run(
        run_load(
            host=HOST,
            port=port,
            requests=_requests(port, bodies),
            concurrency=proto.concurrency,
            warmup_s=proto.warmup_s,
            duration_s=proto.duration_s,
        )
    )
    cpu1 = _cpu_seconds(proc.pid)
    doc: dict[str, Any] = result.summary() | {"statuses": {str(k): v for k, v in result.statuses.items()}}
    # the server's CPU over warm-up + window, per request completed in the window: a rough cost figure
    cpu = None if cpu0 is None or cpu1 is None or not result.requests else (cpu1 - cpu0) / result.requests
    return doc | {"server_cpu_us_per_request": None if cpu is None else round(cpu * 1e6, 1)}


CAPACITY_TRIES = 3  # a window with no 200 answer (a stalled machine) is measured again, twice as long


def capacity_run(
    proc: subprocess.Popen[bytes], port: int, *, bodies: list[bytes], proto: LoadProtocol
) -> dict[str, Any]:
    """Blocking; `closed_loop` until some request succeeds in the window (the overloads are multiples of its rps).

    Raises RuntimeError naming the statuses seen when no window of `CAPACITY_TRIES` has a success.
    """
    doc: dict[str, Any] = {}
    for attempt in range(CAPACITY_TRIES):
        longer = replace(proto, duration_s=proto.duration_s * 2**attempt)
        doc = closed_loop(proc, port, bodies=bodies, proto=longer)
        if doc["rps"] > 0:
            return doc
    raise RuntimeError(
        f"capacity not measurable: no 200 answer from /predict in {CAPACITY_TRIES} closed-loop windows "
        f"(last {doc['window_s']} s: statuses {doc['statuses']}, {doc['requests']} requests completed)"
    )


def load_server(
    cmd: list[str],
    *,
    ready_path: str,
    bodies: list[bytes],
    proto: LoadProtocol,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Blocking; starts one server subprocess, loads it per `proto`, stops it with SIGTERM; its numbers."""
    with started_server(cmd, ready_path=ready_path, env=env) as (proc, port):
        doc = closed_loop(proc, port, bodies=bodies, proto=proto)
    return doc | {"exit_code": proc.returncode}


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def overload_run(
    proc: subprocess.Popen[bytes],
    port: int,
    *,
    bodies: list[bytes],
    proto: LoadProtocol,
    rate_rps: float,
    capacity_rps: float,
    deadline_ms: float,
    seed: int,
) -> dict[str, Any]:
    """Blocking; open-loop load at `rate_rps` against a ready server; goodput, admitted p99, shed share, timeouts."""
    cpu0, wall0 = _cpu_seconds(proc.pid), time.perf_counter()
    with asyncio.Runner(loop_factory=_fast_loop()) as runner:  # the generator must keep up with its schedule
        result: OpenLoopResult = runner.run(
            run_open_loop(
                host=HOST,
                port=port,
                requests=_requests(port, bodies),
                rate_rps=rate_rps,
                warmup_s=proto.overload_warmup_s,
                duration_s=proto.overload_duration_s,
                timeout_s=proto.overload_timeout_s,
                max_connections=proto.overload_max_connections,
                seed=seed,
            )
        )
    cpu1, wall1 = _cpu_seconds(proc.pid), time.perf_counter()
    window = result.window_s
    good = sum(1 for t in result.ok_latencies_s if t * 1000.0 <= deadline_ms)
    answered = result.answered()
    p99, p99_scheduled = result.ok_p99_ms(from_send=True), result.ok_p99_ms()
    return {
        "offered_rps": round(rate_rps, 1),
        "goodput_ratio": round(good / window / capacity_rps, 4) if capacity_rps else None,
        "p99_admitted_ms": None if p99 is None else round(p99, 3),
        "p99_admitted_from_schedule_ms": None if p99_scheduled is None else round(p99_scheduled, 3),
        "shed_share": round(result.statuses.get(503, 0) / answered, 4) if answered else None,
        "client_timeouts": result.client_timeouts,
        "connection_errors": result.connection_errors,
        "scheduled": result.scheduled,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "ok_rps": round(result.statuses.get(200, 0) / window, 1),
        "late_sends": result.late_sends,
        "connections": result.connections,
        "server_cpu_share": None
        if cpu0 is None or cpu1 is None
        else round((cpu1 - cpu0) / (wall1 - wall0), 3),
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
    for dist in (
        "fastapi",
        "starlette",
        "pydantic",
        "uvicorn",
        "h11",
        "httptools",
        "uvloop",
        "granian",
        "onnxruntime",
        "numpy",
    ):
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


def _python_env() -> dict[str, str]:
    return {"PYTHONUNBUFFERED": "1"}


def run(out_dir: Path, *, quick: bool = False, config_path: Path = Path("slipway.yaml")) -> dict[str, Any]:
    """Blocking (~3 min; quick: ~30 s); benches every server and the overloads, writes serving.json/.md, returns it."""
    from slipway.serving.settings import ServeSettings

    started = time.perf_counter()
    proto = protocol(quick=quick)
    load_before = machine_facts()["load_average_1m"]
    raise_open_file_limit()  # the overload's clients
    bundle, holdout = build_bundle(out_dir / "serving", config_path=config_path)
    bodies = [json.dumps({"instances": [row]}).encode() for row in holdout.tolist()]
    py = sys.executable
    serve = [py, "-m", "slipway.serving", "--model", str(bundle), "--host", HOST]
    stacks = [py, "-m", "slipway.bench.stacks", "--host", HOST]
    mb_env = {
        "SLIPWAY_SERVE_MICROBATCH_MAX_BATCH": str(proto.microbatch_max_batch),
        "SLIPWAY_SERVE_MICROBATCH_MAX_WAIT_MS": str(proto.microbatch_max_wait_ms),
    }
    hello_cmds = {
        "hello_slipway": [*stacks, "--app", "hello", "--stack", "slipway"],
        "hello_uvicorn-h11": [*stacks, "--app", "hello", "--stack", "uvicorn-h11"],
        "hello_granian": granian_command(py, host=HOST),
    }
    runs = {
        name: load_server(cmd, ready_path="/", bodies=bodies, proto=proto) for name, cmd in hello_cmds.items()
    }
    deadline_ms = ServeSettings().deadline_ms
    with started_server([*serve, "--no-microbatch"], ready_path="/readyz") as (proc, port):
        runs["predict"] = capacity_run(proc, port, bodies=bodies, proto=proto)
        capacity = runs["predict"]["rps"]
        rss_before = _rss_mb(proc.pid)
        overload = {
            f"x{n}": overload_run(
                proc,
                port,
                bodies=bodies,
                proto=proto,
                rate_rps=n * capacity,
                capacity_rps=capacity,
                deadline_ms=deadline_ms,
                seed=n,
            )
            for n in OVERLOADS
        }
        rss_after = _rss_mb(proc.pid)
    runs["predict"]["exit_code"] = proc.returncode
    runs["predict_microbatch"] = load_server(
        [*serve, "--microbatch"], ready_path="/readyz", bodies=bodies, proto=proto, env=mb_env
    )
    runs["predict_previous_stack"] = load_server(
        [*stacks, "--app", "predict", "--stack", "uvicorn-h11", "--model", str(bundle)],
        ready_path="/readyz",
        bodies=bodies,
        proto=proto,
    )
    fastest = max(HELLO_RUNS, key=lambda name: runs[name]["rps"])
    hello, predict, micro = runs[fastest], runs["predict"], runs["predict_microbatch"]
    size_mb, size_reason = image_size(out_dir)
    rss_growth = _ratio(rss_after, rss_before)
    head = {
        "predict_over_hello_rps": _ratio(predict["rps"], hello["rps"]),
        "p99_over_p50": _ratio(predict["p99_ms"], predict["p50_ms"]),
        "microbatch_on_over_off_rps": _ratio(micro["rps"], predict["rps"]),
        "image_size_mb": size_mb,
        "hello_server": fastest.removeprefix("hello_"),
        "predict_rps": predict["rps"],
        "previous_stack_predict_rps": runs["predict_previous_stack"]["rps"],
        "overload": {key: {k: v[k] for k in OVERLOAD_KEYS} for key, v in overload.items()},
    }
    cpu_ratio = _ratio(hello["server_cpu_us_per_request"], predict["server_cpu_us_per_request"])
    doc: dict[str, Any] = {
        **head,
        **({"image_size_mb_reason": size_reason} if size_reason else {}),
        "targets": _targets(head, deadline_ms=deadline_ms, rss_growth=rss_growth),
        # the baseline hello-world's server CPU per request over /predict's: the rps ratio if each had a core
        "server_cpu_hello_over_predict": cpu_ratio,
        "server_rss_mb": {
            "before_overload": rss_before,
            "after_overload": rss_after,
            "after_over_before": rss_growth,
        },
        "quick": quick,
        "protocol": asdict(proto)
        | {
            "request": "POST /predict, one holdout row per request (the hello-world reads and ignores the body)",
            "generator": "closed loop, keep-alive, raw asyncio streams, one process (the open loop on uvloop)",
            "servers": "one subprocess each, one worker, ORT 1 thread; hello-world on every stack, the fastest is the baseline",
            "overload": (
                "open loop: Poisson arrivals at N x the measured /predict rps, keep-alive connections opened as needed "
                "(up to overload_max_connections); server with the default limits "
                f"(deadline {deadline_ms:g} ms); goodput = 200s answered within the deadline of their SCHEDULED time, "
                "per second, / capacity; p99_admitted_ms from the send (p99_admitted_from_schedule_ms beside it)"
            ),
        },
        "overload_detail": overload,
        "runs": runs,
        "machine": machine_facts() | {"load_average_1m_before": load_before},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "serving.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    (out_dir / "serving.md").write_text(render_markdown(doc))
    return doc


OVERLOAD_KEYS = ("goodput_ratio", "p99_admitted_ms", "shed_share", "client_timeouts")


def _targets(head: dict[str, Any], *, deadline_ms: float, rss_growth: float | None) -> dict[str, Any]:
    def met(value: Any, ok: Callable[[Any], bool]) -> bool:
        return value is not None and bool(ok(value))

    targets: dict[str, Any] = {
        "predict_over_hello_rps": {
            "target": f">= {PREDICT_OVER_HELLO_TARGET:g}",
            "met": met(head["predict_over_hello_rps"], lambda v: v >= PREDICT_OVER_HELLO_TARGET),
        },
        "p99_over_p50": {
            "target": f"<= {P99_OVER_P50_TARGET:g}",
            "met": met(head["p99_over_p50"], lambda v: v <= P99_OVER_P50_TARGET),
        },
        "server_rss_growth": {
            "target": f"<= {RSS_GROWTH_TARGET:.0%} over the overloads",
            "met": met(rss_growth, lambda v: abs(v - 1.0) <= RSS_GROWTH_TARGET),
        },
    }
    for key, o in head["overload"].items():
        targets[f"overload_{key}"] = {
            "target": f"goodput >= {GOODPUT_TARGET:g}, p99 admitted <= {deadline_ms:g} ms, 0 client timeouts",
            "met": met(o["goodput_ratio"], lambda v: v >= GOODPUT_TARGET)
            and met(o["p99_admitted_ms"], lambda v: v <= deadline_ms)
            and o["client_timeouts"] == 0,
        }
    return targets


def raise_open_file_limit() -> None:
    """Blocking (syscalls); this process's soft open-file limit up to its hard limit (the overload opens many sockets)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard)
            )


def _fmt(value: Any, spec: str = ".3g") -> str:
    return "—" if value is None else format(value, spec)


def render_markdown(doc: dict[str, Any]) -> str:
    """Pure; the serving benchmark as markdown: headline vs targets, one row per server, one per overload."""
    t, m, p = doc["targets"], doc["machine"], doc["protocol"]

    def verdict(key: str) -> str:
        return f"{t[key]['target']} | {'met' if t[key]['met'] else '**missed**'}"

    rss = doc["server_rss_mb"]
    lines = [
        "# Serving benchmark" + (" (quick: numbers are not meaningful)" if doc["quick"] else ""),
        "",
        f"* machine: {m['cpu']}, {m['cores']} usable cores, load average {m['load_average_1m_before']} "
        f"before / {m['load_average_1m']} after; uvicorn {m['uvicorn']} (h11 {m['h11']}, httptools "
        f"{m['httptools'] or 'absent'}, uvloop {m['uvloop'] or 'absent'}), granian {m['granian'] or 'absent'}, "
        f"fastapi {m['fastapi']}, onnxruntime {m['onnxruntime']}; {m['timestamp']}",
        f"* protocol: concurrency {p['concurrency']}, warm-up {p['warmup_s']} s, window {p['duration_s']} s "
        f"per server; {p['request']}; {p['generator']}; {p['servers']}; micro-batching max batch "
        f"{p['microbatch_max_batch']}, max wait {p['microbatch_max_wait_ms']} ms; wall {doc['wall_s']} s",
        f"* overload: {p['overload']}; warm-up {p['overload_warmup_s']} s, window {p['overload_duration_s']} s, "
        f"client timeout {p['overload_timeout_s']} s",
        "",
        "| ratio | value | target | |",
        "|---|---|---|---|",
        f"| /predict rps ÷ fastest hello-world rps ({doc['hello_server']}) | {_fmt(doc['predict_over_hello_rps'])} "
        f"| {verdict('predict_over_hello_rps')} |",
        f"| /predict p99 ÷ p50 | {_fmt(doc['p99_over_p50'])} | {verdict('p99_over_p50')} |",
        f"| hello-world ÷ /predict server CPU per request | {_fmt(doc['server_cpu_hello_over_predict'])} | — | |",
        f"| micro-batching on ÷ off, rps at concurrency {p['concurrency']} | {_fmt(doc['microbatch_on_over_off_rps'])} | — | |",
        f"| /predict rps, this stack ÷ the previous (h11) | {_fmt(_ratio(doc['predict_rps'], doc['previous_stack_predict_rps']))} | — | |",
        f"| server RSS after ÷ before the overloads ({_fmt(rss['before_overload'])} MB before) "
        f"| {_fmt(rss['after_over_before'])} | {verdict('server_rss_growth')} |",
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
    lines += [
        "",
        "| overload | offered rps | goodput ÷ capacity | p99 admitted ms | shed share | client timeouts "
        "| connection errors | late sends | server CPU | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, o in doc["overload_detail"].items():
        lines.append(
            f"| {key} | {_fmt(o['offered_rps'], '.0f')} | {_fmt(o['goodput_ratio'])} | {_fmt(o['p99_admitted_ms'])} "
            f"| {_fmt(o['shed_share'])} | {o['client_timeouts']} | {o['connection_errors']} | {o['late_sends']} "
            f"| {_fmt(o['server_cpu_share'])} | {'met' if t[f'overload_{key}']['met'] else '**missed**'} |"
        )
    return "\n".join([*lines, ""])
