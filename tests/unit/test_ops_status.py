"""`slipway status` from the registry and a target's state: champion, digest, since when, canary in flight."""

from __future__ import annotations

from slipway.deploy.fake import FakeTarget, FakeWorld
from slipway.ops.status import deploy_view, render_status, serving_status
from slipway.registry.fake import InMemoryRegistry
from tests.unit.ops_world import MODEL, history, release_of, serving


def test_champion_digest_since_and_a_canary_in_flight() -> None:
    reg = history()
    reg.annotate(
        model_name=MODEL,
        version="2",
        tags={
            "slipway.image.digest": "sha256:" + "a" * 64,
            "slipway.image.reference": "r/m@sha256:" + "a" * 64,
            "slipway.model.framework": "sklearn",
            "slipway.model.class": "Pipeline(StandardScaler, LogisticRegression)",
        },
        documents={},
    )
    target = serving(reg)
    target.start_canary(release_of(reg.get_version(model_name=MODEL, version="4")), ready_timeout_s=1)
    target.set_traffic(weight=25, shadow=0)

    status = serving_status(registry=reg, model_name=MODEL, deploy=deploy_view(target.state(), target="fake"))

    promoted_at = reg.get_version(model_name=MODEL, version="2").tags["slipway.promoted_at"]
    assert (status.champion_version, status.previous_champion, status.champion_via) == ("2", "1", "promotion")
    assert status.image_digest == "sha256:" + "a" * 64
    assert status.champion_model == "sklearn Pipeline(StandardScaler, LogisticRegression)"
    assert status.champion_since == promoted_at
    assert (status.deploy.stable_version, status.deploy.canary_version, status.deploy.weight) == (
        "2",
        "4",
        25,
    )
    assert status.warnings == []
    text = "\n".join(render_status(status))
    assert "champion: m version 2" in text
    assert f"since: {promoted_at} (by promotion)" in text
    assert "canary: version 4 in flight (ready, weight 25%, shadow 0%)" in text


def test_a_target_serving_something_else_is_a_warning() -> None:
    reg = history()
    target = FakeTarget(FakeWorld())
    target.deploy_stable(release_of(reg.get_version(model_name=MODEL, version="1")), ready_timeout_s=1)
    status = serving_status(registry=reg, model_name=MODEL, deploy=deploy_view(target.state(), target="fake"))
    assert status.warnings and "serves version 1, not champion version 2" in status.warnings[0]
    assert "image digest: none (no image stage recorded)" in "\n".join(render_status(status))
    reg.annotate(
        model_name=MODEL,
        version="2",
        tags={"slipway.image.status": "skipped", "slipway.image.reason": "no builder"},
        documents={},
    )
    skipped = serving_status(
        registry=reg, model_name=MODEL, deploy=deploy_view(target.state(), target="fake")
    )
    assert "image digest: none (image skipped: no builder)" in "\n".join(render_status(skipped))


def test_no_champion_and_no_target_state() -> None:
    status = serving_status(
        registry=InMemoryRegistry(),
        model_name=MODEL,
        deploy=deploy_view(None, target="none", note="deploys nothing"),
    )
    assert status.champion_version is None
    assert render_status(status) == [
        "model m: no champion (nothing has been promoted)",
        "deploy target none: deploys nothing",
    ]
