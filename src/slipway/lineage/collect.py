"""Collect lineage facts: git commit and dirty flag, package versions, content hashes."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from slipway.names import Tag

UNKNOWN = "unknown"
_PACKAGES = ("torch", "onnx", "onnxruntime", "mlflow", "prefect", "great_expectations", "slipway")


def git_state(repo: Path) -> dict[str, str]:
    """`{"commit": sha, "dirty": "true"|"false"}`; "unknown" outside a git checkout or without git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    return {"commit": commit, "dirty": "true" if status.strip() else "false"}


def check_commit(git: dict[str, str], *, requested: str | None) -> dict[str, str]:
    """Pure; `git` plus the requested commit; UsageError when the checkout runs other code than requested."""
    from slipway.errors import UsageError

    if not requested:
        return git
    actual = git["commit"]
    if actual != UNKNOWN and not (actual.startswith(requested) or requested.startswith(actual)):
        raise UsageError(
            f"commit {requested}: the checkout that runs this release is at {actual}; update the worker's "
            "checkout (or its deployment's pull step) to the pushed commit, or trigger the release for "
            f"{actual[:12]}"
        )
    return {**git, "requested": requested}


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages a model depends on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = UNKNOWN
    return out


def json_hash(obj: Any) -> str:
    """sha256 of an object's canonical JSON."""
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def lineage_tags(
    *,
    git: dict[str, str],
    data_sha256: str,
    suite_sha256: str,
    suite_version: int,
    training_config_sha256: str,
    training_code_sha256: str | None,
    holdout_sha256: str,
    source: str,
) -> dict[str, str]:
    """The tag set every registered version carries (keys under `slipway.`)."""
    tags = {
        Tag.GIT_COMMIT: git["commit"],
        Tag.GIT_DIRTY: git["dirty"],
        Tag.DATA_SHA256: data_sha256,
        Tag.SUITE_SHA256: suite_sha256,
        Tag.SUITE_VERSION: str(suite_version),
        Tag.TRAINING_CONFIG_SHA256: training_config_sha256,
        Tag.TRAINING_CODE_SHA256: training_code_sha256 or "n/a (model trained elsewhere)",
        Tag.HOLDOUT_SHA256: holdout_sha256,
        Tag.MODEL_SOURCE: source,
    }
    if git.get("requested"):
        tags[Tag.REQUESTED_COMMIT] = git["requested"]
    tags.update({f"{Tag.VERSION_PREFIX}{k}": v for k, v in package_versions().items()})
    return tags
