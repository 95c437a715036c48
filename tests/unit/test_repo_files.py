"""The repo's own config files: prefect.yaml points at real flows (workflows: test_workflows.py)."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_prefect_yaml_deployments_point_at_flows_with_their_parameters() -> None:
    import importlib

    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert doc["deployments"], "no deployments"
    for dep in doc["deployments"]:
        file, func = dep["entrypoint"].split(":")
        module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        params = inspect.signature(flow.fn).parameters
        assert set(dep.get("parameters", {})) <= set(params), dep["name"]
        assert dep["work_pool"]["name"]


def test_prefect_yaml_has_the_team_deployments_with_limits_and_schedule() -> None:
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deps = {d["name"]: d for d in doc["deployments"]}
    assert {"release", "retrain", "rollback", "optimize-gpu"} <= set(deps)
    release = deps["release"]
    assert release["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert {"commit", "data"} <= set(release["parameters"])
    retrain = deps["retrain"]
    assert retrain["parameters"]["release_deployment"] == "release/release"  # through the release limit
    assert [s["cron"] for s in retrain["schedules"]] == ["0 3 * * *"]
    assert deps["optimize-gpu"]["work_pool"]["name"] == "slipway-gpu-k8s"
    monitor = deps["monitor"]  # hourly; one at a time; starts `retrain` on drift (once per episode)
    assert [s["cron"] for s in monitor["schedules"]] == ["15 * * * *"]
    assert monitor["parameters"]["retrain_deployment"] == "retrain/retrain"
    assert monitor["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}


def test_the_committed_suite_is_the_one_the_generator_makes() -> None:
    """The reviewed suite must match what `slipway suite generate` derives (no silent hand edits)."""
    from slipway.config import load_config
    from slipway.data.reference import load_reference
    from slipway.validation.suite import build_reference_suite, load_suite, suite_hash

    cfg = load_config(REPO / "slipway.yaml")
    committed = load_suite(cfg.suite_path())
    regenerated = build_reference_suite(
        load_reference(cfg.data),
        name=committed.name,
        version=committed.version,
        margin=committed.meta["margin"],
        tail_share=committed.meta["tail_share"],
    )
    assert suite_hash(regenerated) == suite_hash(committed)
