"""What a newcomer meets on a fresh machine: `make demo` without any image builder, and an installed
(non-editable) Slipway releasing from a project folder of its own."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SLIPWAY_"))}
    env["SLIPWAY_HOME"] = str(home)
    return env


def no_docker_daemon(folder: Path) -> Path:
    """A `docker` CLI that finds no daemon, first on PATH: the image builder is there but cannot build."""
    folder.mkdir(parents=True, exist_ok=True)
    docker = folder / "docker"
    docker.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
    )
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    return folder


def reports(home: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((home / "reports").glob("release-*.json"))]


def test_make_demo_without_an_image_builder_promotes_then_rolls_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(home)
    env["SLIPWAY_IMAGE_BUILDER"] = "docker"  # forced to a builder that is not available here
    env["PATH"] = f"{no_docker_daemon(tmp_path / 'bin')}{os.pathsep}{env['PATH']}"
    try:
        proc = subprocess.run(
            # SLIPWAY_IMAGES_MK: this machine's image settings are not read (a machine that never ran images-setup)
            [
                "make",
                "-s",
                "demo",
                f"DEMO_DIR={tmp_path / 'demo'}",
                f"VENV={VENV}",
                "SLIPWAY_IMAGES_MK=/nonexistent",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        decisions = [(r["decision"], r["stage"], r["model_version"]) for r in reports(home)]
        assert decisions == [("promoted", "canary", "1"), ("rolled_back", "canary", "2")]
        for report in reports(home):
            image = report["image"]
            assert isinstance(image, dict) and image["status"] == "skipped" and image["record"] is None
    finally:
        subprocess.run(
            [str(VENV / "bin" / "slipway"), "deploy", "stop"], env=env, capture_output=True, check=False
        )


def test_an_error_release_writes_its_report_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run(
        [str(VENV / "bin" / "slipway"), "release", "--data", str(tmp_path / "missing.csv")],
        cwd=REPO,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    ((decision, stage),) = [(r["decision"], r["stage"]) for r in reports(home)]
    assert (decision, stage) == ("error", "prepare")


@pytest.mark.image_tools  # builds with buildah when this machine has it
def test_an_installed_slipway_releases_from_a_project_folder(tmp_path: Path) -> None:
    """`pip install .` (not editable) into a new venv, then `slipway release` inside a project folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", str(REPO)],
        check=True,
        timeout=600,
    )
    # the dependencies come from the test's own environment, after the new venv's site-packages
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.check_output(
        [str(python), "-c", "import slipway, flows; print(slipway.__file__)"], text=True
    )
    assert Path(where.strip()).is_relative_to(venv), where  # the installed copy, not the checkout

    project = tmp_path / "project"
    (project / "expectations").mkdir(parents=True)
    shutil.copy(REPO / "expectations" / "breast_cancer.json", project / "expectations")
    config = yaml.safe_load((REPO / "slipway.yaml").read_text())
    config["deploy"] = {"target": "none"}
    (project / "slipway.yaml").write_text(yaml.safe_dump(config))
    home = project / ".slipway"
    env = clean_env(home)
    env.update(
        {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("SLIPWAY_BASE_IMAGE", "SLIPWAY_BUILDAH", "SLIPWAY_IMAGE"))
        }
    )
    slipway = str(venv / "bin" / "slipway")
    made = subprocess.run(
        [slipway, "data", "batch", "--out", "batch.csv", "--seed", "5"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    proc = subprocess.run(
        [slipway, "release", "--data", "batch.csv", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["decision"], result["model_version"]) == ("registered", "1")
    assert result["image"]["status"] in ("built", "skipped"), result[
        "image"
    ]  # built from the packaged Dockerfile
    assert any((home / "reports").glob("release-*.json"))
