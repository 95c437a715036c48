"""Publishing a stage's artifacts in the Prefect UI (from the flow, so cached stages show theirs too)."""

from __future__ import annotations

from collections.abc import Iterable

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from slipway.release.outcome import Artifact


def publish_artifacts(artifacts: Iterable[Artifact]) -> None:
    """Blocking (one API call each); every artifact, keyed as its stage named it."""
    for a in artifacts:
        if a.kind == "markdown":
            create_markdown_artifact(key=a.key, markdown=str(a.body), description=a.description)
        elif a.kind == "table" and isinstance(a.body, list):
            create_table_artifact(key=a.key, table=a.body, description=a.description)
        else:
            create_link_artifact(
                key=a.key, link=str(a.body), link_text=a.link_text, description=a.description
            )
