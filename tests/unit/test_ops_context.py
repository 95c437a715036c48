"""Which target the operations commands reach, from slipway.yaml; an unreachable one is named, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slipway.deploy.local import LocalTarget
from slipway.errors import DeployError
from slipway.ops.context import open_context
from slipway.ops.status import read_deploy_view
from slipway.settings import Settings


def config(tmp_path: Path, deploy: dict[str, object]) -> Path:
    path = tmp_path / "slipway.yaml"
    path.write_text(yaml.safe_dump({"deploy": deploy}))
    return path


def test_local_target_lives_under_the_state_folder(tmp_path: Path) -> None:
    ctx = open_context(
        config_path=config(tmp_path, {"target": "local"}), settings=Settings(home=tmp_path / "h")
    )
    target = ctx.target()
    assert isinstance(target, LocalTarget)
    assert target.state_dir == (tmp_path / "h" / "deploy" / "local").resolve()
    assert ctx.audit_path == (tmp_path / "h" / "reports" / "audit.jsonl").resolve()
    view = read_deploy_view(ctx)
    assert (view.target, view.stable_version, view.note) == ("local", None, None)


def test_target_none_deploys_nothing_and_says_so(tmp_path: Path) -> None:
    ctx = open_context(config_path=config(tmp_path, {"target": "none"}), settings=Settings(home=tmp_path))
    assert ctx.target() is None
    assert "only the alias moves" in (read_deploy_view(ctx).note or "")


def test_an_unreachable_kubernetes_target_is_named(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"target": "kubernetes", "kubernetes": {"kubeconfig": "missing-kubeconfig.yaml"}})
    ctx = open_context(config_path=cfg, settings=Settings(home=tmp_path))
    with pytest.raises(DeployError, match=r"missing-kubeconfig\.yaml"):
        ctx.target()
    view = read_deploy_view(ctx)
    assert view.target == "kubernetes" and "missing-kubeconfig.yaml" in (view.note or "")
