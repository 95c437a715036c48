"""infra/monitoring ships consistent: the Grafana dashboard is an importable model (unique panel ids, a 24-column
grid without overlaps, a Prometheus data-source variable, only defined variables used), and every PromQL query in
it and in the alert rules selects only metrics a Slipway model server exports (read off `ServingMetrics`) or a
monitor run writes (read off `metrics_text`). promtool, when installed, checks the rules, runs their unit tests
(alerts_test.yml), checks the example config and parses every dashboard query."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import (
    ALERTS,
    DASHBOARD,
    PROMETHEUS_CONFIG,
    RULE_TESTS,
    SCRAPE_SERIES,
    metric_names,
    monitor_gauge_names,
    serving_metric_names,
    shortened_rules,
)

GRID_COLUMNS = 24
SEVERITIES = {"critical", "warning"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"label_values\((.*),\s*\w+\)")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")


@pytest.fixture(scope="module")
def known_metrics() -> frozenset[str]:
    return serving_metric_names() | monitor_gauge_names() | SCRAPE_SERIES


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("no promtool on PATH: apt-get install prometheus (.ci/run installs it)")
    return binary


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL query of the dashboard: panel targets, then query variables' label_values selectors."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            match = _LABEL_VALUES.fullmatch(var["query"]["query"])
            assert match, f"variable {var['name']}: not a label_values(selector, label) query"
            exprs.append(match.group(1))
    return exprs


def variables_used(text: str) -> set[str]:
    """Pure; the template variables `$var`, `${var}`, `${var:format}` and `[[var]]` a string uses."""
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(text)}


def test_metric_names_reads_selectors_not_functions_labels_numbers_or_variables() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (model, le) (rate(a_bucket{le=~"1|1\\\\.0", x="$v"}[$__rate_interval])))'
        " > 0.5 and on (model) sum by (model) (increase(b_total[5m])) >= 2e1 or time() - max(c) > 3 * 3600"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_dashboard_panels_have_unique_ids_and_tile_a_24_column_grid(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["uid"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "xywh") and grid["w"] > 0 and grid["h"] > 0
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panels {cells.get((x, y))} and {panel['id']} overlap"
                cells[x, y] = panel["id"]


def test_every_dashboard_panel_queries_only_metrics_the_server_or_monitor_export(
    dashboard: dict[str, Any], known_metrics: frozenset[str]
) -> None:
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            assert not panel.get("targets")
            continue
        targets = panel["targets"]
        assert targets and len({t["refId"] for t in targets}) == len(targets), panel["title"]
    exprs = queries(dashboard)
    for expr in exprs:
        assert metric_names(expr) and metric_names(expr) <= known_metrics, expr
    used = set().union(*map(metric_names, exprs))
    # the panels cover the server's requests, latency, non-finite and invalid outputs and every monitor gauge
    assert {
        "slipway_requests_total",
        "slipway_request_latency_seconds_bucket",
        "slipway_nonfinite_outputs_total",
        "slipway_prediction_score_bucket",
        "slipway_prediction_value_bucket",
    } | monitor_gauge_names() <= used


def test_dashboard_uses_only_defined_variables_and_a_prometheus_datasource(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    used = variables_used(json.dumps(dashboard["panels"])) | variables_used(
        json.dumps(dashboard["templating"])
    )
    assert {name for name in used if not name.startswith("__")} <= set(variables)
    sources = [v for v in variables.values() if v["type"] == "datasource"]
    assert [v["query"] for v in sources] == ["prometheus"]
    assert {"model", "version"} <= {name for name, v in variables.items() if v["type"] == "query"}
    datasource_uids = {
        holder["datasource"]["uid"]
        for panel in dashboard["panels"]
        for holder in [panel, *panel.get("targets", [])]
        if "datasource" in holder
    }
    assert datasource_uids == {"${" + sources[0]["name"] + "}"}


def test_every_alert_selects_known_metrics_has_a_severity_and_annotates_with_labels_it_keeps(
    rules: list[dict[str, Any]], known_metrics: frozenset[str]
) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert metric_names(rule["expr"]) and metric_names(rule["expr"]) <= known_metrics, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES and rule["for"], rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        groupings = [set(map(str.strip, g.split(","))) - {"le"} for g in _BY.findall(rule["expr"])]
        if groupings:  # an aggregated alert keeps only the labels every aggregation keeps
            kept = set.intersection(*groupings)
            referenced = set(_TEMPLATE_LABEL.findall(annotations["summary"] + annotations["description"]))
            assert referenced and referenced <= kept, rule["alert"]


def test_shortened_rules_change_only_range_windows_and_for_durations(rules: list[dict[str, Any]]) -> None:
    shipped = yaml.safe_load(ALERTS.read_text())
    short = shortened_rules(shipped, window="10s", hold="2s")
    short_rules = [rule for group in short["groups"] for rule in group["rules"]]
    assert shipped == yaml.safe_load(ALERTS.read_text())  # the input is not changed
    assert [r["alert"] for r in short_rules] == [r["alert"] for r in rules]
    for before, after in zip(rules, short_rules, strict=True):
        assert after["for"] == "2s"
        assert re.sub(r"\[\w+\]", "[W]", before["expr"]) == re.sub(r"\[\w+\]", "[W]", after["expr"])
        assert set(re.findall(r"\[(\w+)\]", after["expr"])) <= {"10s"}
        assert {k: v for k, v in before.items() if k not in ("expr", "for")} == {
            k: v for k, v in after.items() if k not in ("expr", "for")
        }


def _promtool(promtool: str, *args: str) -> None:
    proc = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_accepts_the_rules_and_their_unit_tests_pass(promtool: str) -> None:
    _promtool(promtool, "check", "rules", str(ALERTS))
    _promtool(promtool, "test", "rules", str(RULE_TESTS))


def test_promtool_accepts_the_example_config(promtool: str) -> None:
    _promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))


def test_promtool_parses_every_dashboard_query(
    promtool: str, dashboard: dict[str, Any], tmp_path: Path
) -> None:
    """Each query, its variables filled in as Grafana would ($__rate_interval a duration, the rest `.*`),
    as a recording rule: `promtool check rules` parses its PromQL."""
    exprs = [re.sub(r"\$\w+", ".*", expr.replace("$__rate_interval", "5m")) for expr in queries(dashboard)]
    recording = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    _promtool(promtool, "check", "rules", str(path))
