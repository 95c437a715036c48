"""The repo's own config files: workflows pass the GitHub schema, prefect.yaml points at real flows."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_workflows_pass_the_github_workflow_schema() -> None:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    workflows = sorted(str(p) for p in (REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no workflow files"
    proc = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", *workflows], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_actions_are_pinned_by_sha_with_least_permission() -> None:
    for path in (REPO / ".github" / "workflows").glob("*.yml"):
        doc = yaml.safe_load(path.read_text())
        assert doc["permissions"] == {"contents": "read"}, path
        for job in doc["jobs"].values():
            assert "timeout-minutes" in job, path
            for step in job["steps"]:
                if "uses" in step:
                    ref = step["uses"].split("@", 1)[1]
                    assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), step["uses"]


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
    )
    assert suite_hash(regenerated) == suite_hash(committed)
