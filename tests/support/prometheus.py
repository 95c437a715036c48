"""Real Prometheus for the monitoring tests (Debian's `prometheus`, `promtool`, `prometheus-node-exporter`):
the metric names PromQL expressions use, the shipped rules with shortened windows, Prometheus and
node_exporter on loopback ports, and alert states read back from Prometheus' HTTP API."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from slipway.monitoring.report import metrics_text
from slipway.ports import free_port
from slipway.serving.metrics import ServingMetrics
from tests.support.servers import stop, wait_http

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "infra" / "monitoring"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
RULE_TESTS = MONITORING / "prometheus" / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "slipway-serving.json"

NODE_EXPORTER_NAMES = ("prometheus-node-exporter", "node_exporter")
SCRAPE_SERIES = frozenset({"up"})
"""Series Prometheus itself adds for every target."""

_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`')
_BRACES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBER = re.compile(r"(?<![\w:])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")
_RANGE = re.compile(r"\[\d+[smhdwy]\]")


def serving_metric_names() -> frozenset[str]:
    """The sample names a Slipway model server exports, read off `ServingMetrics`' registries (classifier and
    regression)."""
    classifier, regression = ServingMetrics(), ServingMetrics()
    regression.score_values((0.0, 1.0))
    names: set[str] = set()
    for metrics in (classifier, regression):
        for family in metrics.registry.collect():
            names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    return frozenset(names)


def monitor_gauge_names() -> frozenset[str]:
    """The gauges a Slipway monitor run writes to its node_exporter textfile, read off `metrics_text`."""
    text = metrics_text(model_name="m", version="1", drift=True, drifted=1, breach=True, now=0.0)
    return frozenset(line.split()[2] for line in text.splitlines() if line.startswith("# TYPE "))


def metric_names(expr: str) -> set[str]:
    """Pure; the metric names a PromQL expression selects (strings, matchers, ranges, grouping labels,
    numbers, functions and keywords left out)."""
    text = _STRING.sub(" ", expr)
    text = _BRACES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        called = text[match.end() :].lstrip().startswith("(")
        if not called and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def shortened_rules(rules: Mapping[str, Any], *, window: str, hold: str) -> dict[str, Any]:
    """Pure; the rule file with every range selector `[N<unit>]` turned into `[window]` and every `for:` into
    `hold` (thresholds, labels and annotations unchanged): production windows at test speed."""
    short = copy.deepcopy(dict(rules))
    for group in short["groups"]:
        for rule in group["rules"]:
            rule["expr"] = _RANGE.sub(f"[{window}]", rule["expr"])
            if "for" in rule:
                rule["for"] = hold
    return short


def loopback_config(
    shipped: Mapping[str, Any],
    *,
    rules: Path,
    targets: Mapping[str, str],
    model: str,
    interval: str = "1s",
) -> dict[str, Any]:
    """Pure; the shipped example config pointed at test targets: only the jobs in `targets` (job -> host:port),
    their `model` target label set to `model`, scrape and evaluation every `interval`, `rules` as the only
    rule file, no Alertmanager."""
    config = copy.deepcopy(dict(shipped))
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "evaluation_interval": interval,
    }
    config["rule_files"] = [str(rules)]
    config.pop("alerting", None)
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    for job in jobs:
        for static in job["static_configs"]:
            static["targets"] = [targets[job["job_name"]]]
            if "model" in static.get("labels", {}):
                static["labels"]["model"] = model
    config["scrape_configs"] = jobs
    return config


@contextmanager
def prometheus(binary: str, config: Mapping[str, Any], *, workdir: Path) -> Iterator[str]:
    """Blocking until ready (about 1 s); a Prometheus on a free loopback port with its data under `workdir`;
    yields its URL; stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    url = f"http://127.0.0.1:{free_port()}"
    args = [
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
    ]
    with _serving([binary, *args], ready=f"{url}/-/ready", log=workdir / "prometheus.log"):
        yield url


def node_exporter_path() -> str | None:
    """Non-blocking; the node_exporter binary on PATH (Debian names it prometheus-node-exporter), or None."""
    return next((p for p in map(shutil.which, NODE_EXPORTER_NAMES) if p), None)


@contextmanager
def node_exporter(binary: str, *, textfile_dir: Path, workdir: Path) -> Iterator[str]:
    """Blocking until it answers; node_exporter with only the textfile collector over `textfile_dir`, on a free
    loopback port; yields its host:port; stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    args = [
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile_dir}",
        f"--web.listen-address={address}",
    ]
    with _serving([binary, *args], ready=f"http://{address}/metrics", log=workdir / "node-exporter.log"):
        yield address


@contextmanager
def _serving(command: list[str], *, ready: str, log: Path) -> Iterator[None]:
    """Blocking until `ready` answers 200 (30 s at most); the command in its own process group, its output in
    `log`; stopped (SIGTERM, SIGKILL after 10 s) on exit."""
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(ready, timeout_s=30, proc=proc, log=log)
        yield
    finally:
        stop(proc, grace_s=10)


def alerts(url: str) -> list[dict[str, Any]]:
    """Blocking (one HTTP call); the pending and firing alerts of the Prometheus at `url`."""
    resp = httpx.get(f"{url}/api/v1/alerts", timeout=5)
    resp.raise_for_status()
    found: list[dict[str, Any]] = resp.json()["data"]["alerts"]
    return found


def alert_state(url: str, name: str, **labels: str) -> str:
    """Blocking; `firing`, `pending` or `inactive` (neither) for the alert `name` whose labels include `labels`."""
    states = {
        alert["state"]
        for alert in alerts(url)
        if alert["labels"].get("alertname") == name
        and all(alert["labels"].get(k) == v for k, v in labels.items())
    }
    return next((s for s in ("firing", "pending") if s in states), "inactive")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """Blocking; the instant vector `promql` evaluates to now."""
    resp = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    resp.raise_for_status()
    result: list[dict[str, Any]] = resp.json()["data"]["result"]
    return result


def wait_for(
    condition: Callable[[], bool], *, timeout_s: float, explain: Callable[[], str], every_s: float = 0.25
) -> float:
    """Blocking; polls `condition` until it holds and returns the seconds that took; AssertionError with
    `explain()` when `timeout_s` passes first."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s:g} s: {explain()}")
        time.sleep(every_s)
    return time.monotonic() - start
