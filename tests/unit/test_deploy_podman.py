"""Podman mode of the local target without podman: config, the `podman run` it builds, refusals, old state files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from slipway.config import DeployConfig, PipelineConfig
from slipway.deploy.base import ModelRelease, require_digest
from slipway.deploy.local import LocalTarget
from slipway.deploy.podman import PodmanRuntime, container_name, container_prefix
from slipway.deploy.state import read_state
from slipway.errors import DeployError
from slipway.settings import Settings

DIGEST = "127.0.0.1:5000/slipway/tiny@sha256:" + "ab" * 32


def test_process_mode_is_the_default_and_podman_is_opt_in() -> None:
    assert DeployConfig().local.runtime == "process"
    cfg = PipelineConfig.model_validate({"deploy": {"local": {"runtime": "podman"}}})
    target = LocalTarget.from_config(cfg, settings=Settings(image_registry_tls_verify=False))
    assert target.podman is not None and target.podman.tls_verify is False  # from the settings
    assert LocalTarget.from_config(PipelineConfig(), settings=Settings()).podman is None
    with pytest.raises(ValidationError, match="runtime"):
        DeployConfig.model_validate({"local": {"runtime": "docker"}})
    with pytest.raises(ValidationError, match="rooot"):
        DeployConfig.model_validate({"local": {"podman": {"rooot": "/x"}}})


def test_the_config_sets_this_machines_podman_flags() -> None:
    cfg = DeployConfig.model_validate(
        {"local": {"podman": {"root": "/s", "runroot": "/r", "runtime": "crun", "cgroup_manager": "systemd",
                              "tls_verify": True, "pull_timeout_s": 9, "run_args": []}}}
    )  # fmt: skip
    runtime = PodmanRuntime.from_config(cfg.local.podman, tls_verify_default=False)
    assert runtime.base() == [
        "podman", "--root", "/s", "--runroot", "/r", "--runtime", "crun",
        "--cgroup-manager", "systemd", "--events-backend", "file",
    ]  # fmt: skip
    assert (runtime.tls_verify, runtime.pull_timeout_s, runtime.run_args) == (True, 9.0, ())


def test_the_server_runs_in_the_foreground_by_digest_read_only_as_10001_on_the_host_network() -> None:
    runtime = PodmanRuntime(run_args=("--ulimit", "nofile=20000:20000"))
    cmd = runtime.run_command(
        image_ref=DIGEST, name="n", port=8123, env={"SLIPWAY_SERVE_FAULT_OUTPUT": "nan"}
    )
    assert cmd[-1] == DIGEST and "-d" not in cmd and "--detach" not in cmd
    flags = " ".join(cmd)
    for expected in (
        "run --rm --replace --name n --pull never --init",
        "--network host --read-only --tmpfs /tmp --user 10001 --ulimit nofile=20000:20000",
        "-e SLIPWAY_SERVE_FAULT_OUTPUT=nan -e SLIPWAY_SERVE_PORT=8123 -e SLIPWAY_SERVE_HOST=127.0.0.1",
    ):
        assert expected in flags


def test_only_digest_references_are_run() -> None:
    assert require_digest(DIGEST, target="podman", what="canary tiny v2") == DIGEST
    for ref in (None, "127.0.0.1:5000/slipway/tiny:2"):
        with pytest.raises(DeployError, match="canary tiny v2"):
            require_digest(ref, target="podman", what="canary tiny v2")


def test_a_podman_target_refuses_an_image_less_release_before_starting_anything(tmp_path: Path) -> None:
    target = LocalTarget(state_dir=tmp_path, podman=PodmanRuntime(binary="/nonexistent/podman"))
    with pytest.raises(DeployError, match="stable tiny v1 has no image_ref"):
        target.deploy_stable(ModelRelease("tiny", "1", bundle_dir=tmp_path), ready_timeout_s=5)
    assert target.processes() == []


def test_container_names_are_deterministic_per_deployment_role_and_port(tmp_path: Path) -> None:
    name = container_name(state_dir=tmp_path, role="canary", port=8123)
    assert name == container_name(state_dir=tmp_path / ".", role="canary", port=8123)
    assert name.startswith(container_prefix(tmp_path)) and name.endswith("-canary-8123")
    assert container_prefix(tmp_path / "other") != container_prefix(tmp_path)


def test_state_files_without_container_fields_still_read(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    old = {"schema_version": 1, "generation": 3, "stable": {"role": "stable", "pid": 42, "port": 8000}}
    path.write_text(json.dumps(old))
    stable = read_state(path).stable
    assert stable is not None and (stable.pid, stable.container, stable.podman) == (42, None, None)
