"""`slipway why VERSION`: provenance from the version's tags, every section present, unknown versions named."""

from __future__ import annotations

import pytest

from slipway.errors import UsageError
from slipway.ops.why import NOT_RECORDED, provenance, render_provenance
from tests.unit.ops_world import MODEL, history


def test_provenance_groups_the_tags_and_marks_what_is_missing() -> None:
    reg = history()
    reg.annotate(
        model_name=MODEL,
        version="3",
        tags={"slipway.optimize.shipped": "int8_dynamic", "slipway.canary.result": "rolled_back"},
        documents={},
    )
    p = provenance(registry=reg, model_name=MODEL, version="3")

    assert p.sections["source"]["git commit"] == "commit-k3"
    assert p.sections["optimizer"]["shipped"] == "int8_dynamic"
    assert p.sections["canary"]["result"] == "rolled_back"
    assert p.sections["decision"]["decision"] == "rejected"
    assert p.sections["decision"]["reason"] == "failed: shadow_nonfinite"
    assert p.sections["image"]["digest"] == NOT_RECORDED
    assert "rollback" not in p.sections  # shown only once a rollback touched the version
    text = "\n".join(render_provenance(p))
    assert text.startswith("m version 3, run ")
    assert "  shipped: int8_dynamic" in text


def test_promoted_version_shows_its_promotion() -> None:
    p = provenance(registry=history(), model_name=MODEL, version="2")
    assert p.aliases == ["champion"]
    assert p.sections["decision"]["previous champion"] == "1"
    assert p.sections["decision"]["reason"] == "canary: promoted after 4 steps"


def test_unknown_version_is_named() -> None:
    with pytest.raises(UsageError, match="version '7' of model m does not exist"):
        provenance(registry=history(), model_name=MODEL, version="7")
