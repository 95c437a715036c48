"""`slipway features apply | materialize | skew`: the configured feature store (`features` in slipway.yaml).

Errors (no feature store configured, a bad repository, nothing materialized) exit 2 through `cli.main`.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slipway.errors import UsageError

if TYPE_CHECKING:
    from slipway.config import PipelineConfig
    from slipway.features.base import FeatureStore, StepResult

features_app = typer.Typer(
    help="The feature store: register definitions, load the online store, check online == historical.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Pipeline config file (default: $SLIPWAY_CONFIG or ./slipway.yaml)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Run even when the cache says it is already done.")]


def _open(config: Path | None) -> tuple[PipelineConfig, FeatureStore]:
    from slipway.config import load_config
    from slipway.features.factory import make_feature_store
    from slipway.settings import Settings

    settings = Settings()
    cfg = load_config(config if config is not None else settings.config)
    store = make_feature_store(cfg, settings=settings)
    if store is None:
        raise UsageError(
            "features.store is none in the config: set features: {store: feast, repo: ..., service: ...}"
        )
    return cfg, store


def _moment(text: str | None, *, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: not an ISO date/time (e.g. 2026-01-31T12:00:00+00:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _step(result: StepResult, *, as_json: bool) -> None:
    if as_json:
        doc = {
            "step": result.step,
            "cached": result.cached,
            "seconds": round(result.seconds, 3),
            "detail": result.detail,
        }
        sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    else:
        typer.echo(result.line())


@features_app.command("apply")
def apply_cmd(config: ConfigOpt = None, force: ForceOpt = False, as_json: JsonOpt = False) -> None:
    """Register the Feast repository's definitions (cached on its content: unchanged content is a no-op)."""
    _, store = _open(config)
    _step(store.apply(force=force), as_json=as_json)


@features_app.command("materialize")
def materialize_cmd(
    end: Annotated[
        str | None, typer.Option("--end", help="Latest event time to load, ISO (default: now; naive = UTC).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Earliest event time to load, ISO (default: every row).")
    ] = None,
    config: ConfigOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Load each entity's latest values up to --end into the online store (applies first; both cached)."""
    _, store = _open(config)
    store.apply()
    until = _moment(end, option="--end") or datetime.now(UTC)
    _step(store.materialize(end=until, start=_moment(start, option="--start"), force=force), as_json=as_json)


@features_app.command("skew")
def skew_cmd(
    entities: Annotated[
        Path | None,
        typer.Option(
            "--entities",
            help="CSV/Parquet file whose join-key columns name the entities to check (default: data.reference).",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Read both sides at this time, ISO (default: the last materialization's end)."
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Online features == historical features for the entities: exit 0 consistent, 1 mismatches (each named:
    entity, feature, both values), 2 error."""
    from slipway.data.batch_io import read_batch
    from slipway.features.skew import check_skew

    cfg, store = _open(config)
    path = entities if entities is not None else cfg.resolve(Path(cfg.data.reference))
    frame = read_batch(path)
    report = check_skew(
        store,
        frame,
        atol=cfg.features.skew_atol,
        rtol=cfg.features.skew_rtol,
        as_of=_moment(as_of, option="--as-of"),
    )
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), sort_keys=True) + "\n")
    else:
        for line in report.lines():
            typer.echo(line)
    raise typer.Exit(report.verdict.exit_code)
