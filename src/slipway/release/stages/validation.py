"""Stage 1, the validation gate: the batch against the versioned expectation suite."""

from __future__ import annotations

from pathlib import Path

from slipway.data.batch_io import read_batch
from slipway.release.context import ReleaseContext
from slipway.release.evidence import DATA_DOCS
from slipway.release.outcome import Artifact, StageOutcome, markdown
from slipway.release.result import ResultPatch
from slipway.reporting.markdown import validation_markdown
from slipway.validation.base import DataValidator, FailedExpectation, ValidationReport


def validate_batch(ctx: ReleaseContext, *, validator: DataValidator) -> StageOutcome[ValidationReport]:
    """Blocking (~1 s); rejected with every failed expectation as a reason; nothing else is touched."""
    frame = read_batch(Path(ctx.data_path))
    report = validator.validate(
        frame, suite=ctx.suite, suite_hash=ctx.suite_sha256, run_name=f"release-{ctx.data_sha256[:12]}"
    )
    leaked = ctx.reference().rows_in_holdout(frame)
    if (
        leaked
    ):  # the holdout must stay unseen: a batch holding its rows would grade the model on its training data
        report = report.model_copy(
            update={
                "success": False,
                "failures": [
                    *report.failures,
                    FailedExpectation(
                        type="holdout_overlap",
                        observed=f"{len(leaked)} batch row(s) are rows of the fixed holdout (first: batch row "
                        f"{leaked[0]}); the holdout must stay unseen by training",
                        unexpected_count=len(leaked),
                    ),
                ],
            }
        )
    artifacts: list[Artifact] = [
        markdown("validation-report", validation_markdown(report), "Data validation gate")
    ]
    page = _local_page(report.data_docs)
    failures = tuple(f.line() for f in report.failures)
    return StageOutcome(
        stage="validation",
        verdict="passed" if report.success else "rejected",
        value=report,
        cause=f"{len(failures)} expectation(s) failed" if failures else "",
        reasons=failures,
        documents={"slipway/validation.json": report.model_dump(mode="json")},
        # uploaded with the version (or the rejected attempt's run); `data-docs` links there at the end
        files={DATA_DOCS: page} if page is not None else {},
        patch=ResultPatch(data_docs=report.data_docs),
        artifacts=tuple(artifacts),
    )


def _local_page(url: str | None) -> Path | None:
    """The Data Docs page as a local file (GX gives a file:// URL), when it exists."""
    if not url or not url.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(url).path))
    return path if path.is_file() else None
