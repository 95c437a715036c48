"""`slipway` command line: data batches, validation, releases, serving. Errors exit 2 with one clear line."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slipway.errors import SlipwayError, UsageError
from slipway.features.cli import features_app

if TYPE_CHECKING:
    from slipway.ops.context import OpsContext
    from slipway.settings import Settings

app = typer.Typer(
    help="Slipway: validate, train, gate and register ML model releases (Prefect flows over one library).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Make and inspect data batches.", no_args_is_help=True)
suite_app = typer.Typer(help="Maintain the expectation suite.", no_args_is_help=True)
app.add_typer(data_app, name="data")
deploy_app = typer.Typer(help="Inspect and stop the local deploy target.", no_args_is_help=True)
app.add_typer(suite_app, name="suite")
app.add_typer(deploy_app, name="deploy")
app.add_typer(features_app, name="features")


def _add_remote() -> None:
    from slipway.orchestration.cli import remote_app

    app.add_typer(remote_app, name="remote")


_add_remote()

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Pipeline config file (default: $SLIPWAY_CONFIG or ./slipway.yaml)."),
]


def _settings() -> Settings:
    from slipway.settings import Settings

    return Settings()


def _config_path(config: Path | None) -> Path:
    return config if config is not None else _settings().config


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


@data_app.command("batch")
def data_batch(
    out: Annotated[Path, typer.Option("--out", help="File to write (.csv or .parquet).")],
    rows: Annotated[int, typer.Option("--rows", min=0, help="Rows to sample from the reference pool.")] = 400,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same batch.")] = 0,
    drift: Annotated[
        float, typer.Option("--drift", help="Covariate shift in reference std units (0 = none).")
    ] = 0.0,
    corrupt: Annotated[
        str | None,
        typer.Option(
            "--corrupt",
            help="Corruption kind: missing-column, nulls, out-of-range, bad-labels, wrong-type, empty, "
            "duplicates, flipped-labels.",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Write a batch: resampled reference rows with jitter, optional drift and corruption."""
    from slipway.config import load_config
    from slipway.data.batch_io import write_batch
    from slipway.data.generate import Corruption, make_batch
    from slipway.features.joined import entity_batch, project_reference

    kind = None
    if corrupt is not None:
        try:
            kind = Corruption(corrupt)
        except ValueError:
            raise UsageError(
                f"--corrupt {corrupt!r}: unknown kind; one of {[c.value for c in Corruption]}"
            ) from None
    cfg = load_config(_config_path(config))
    ref = project_reference(cfg)
    if cfg.features.store != "none":  # the batch names entities; the store has their features
        if drift or kind is not None:
            raise UsageError(
                "--drift/--corrupt: a feature-store project's batch carries entity keys, timestamps and labels; "
                "its features come from the store (shift or corrupt them there)"
            )
        frame = entity_batch(ref, rows=rows, seed=seed)
    else:
        frame = make_batch(ref, rows=rows, seed=seed, drift=drift, corrupt=kind)
    write_batch(frame, out)
    typer.echo(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {out}", err=True)


@app.command("validate")
def validate_cmd(
    data: Annotated[Path, typer.Option("--data", help="Batch file to validate (.csv or .parquet).")],
    config: ConfigOpt = None,
) -> None:
    """Validate a batch against the suite: exit 0 valid, 1 invalid (every failure listed), 2 usage error."""
    from slipway.config import load_config
    from slipway.data.batch_io import read_batch
    from slipway.runtime_env import apply_runtime_defaults
    from slipway.validation.factory import make_validator
    from slipway.validation.suite import load_suite, suite_hash

    settings = _settings()
    apply_runtime_defaults(settings)
    cfg = load_config(_config_path(config))
    suite = load_suite(cfg.suite_path())
    frame = read_batch(data)
    report = make_validator(settings).validate(
        frame, suite=suite, suite_hash=suite_hash(suite), run_name=f"validate-{data.stem}"
    )
    verdict = "valid" if report.success else "INVALID"
    typer.echo(
        f"{data}: {verdict}: {report.rows} rows, {report.evaluated} expectations, {len(report.failures)} failed"
    )
    for failure in report.failures:
        typer.echo(f"  - {failure.line()}")
    if report.data_docs:
        typer.echo(f"Data Docs: {report.data_docs}")
    raise typer.Exit(0 if report.success else 1)


@app.command("release")
def release_cmd(
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Batch to release from: a .csv/.parquet file, a folder (its newest batch) or an http(s) URL "
            "(default: the newest batch in slipway.yaml batches.location).",
        ),
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            "--model-uri",
            help="Accept a model trained elsewhere instead of training: an MLflow model (runs:/..., models:/... or "
            "its folder) of the pytorch, sklearn or onnx flavor, or a .onnx file.",
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object on the last stdout line.")
    ] = False,
    canary_fault: Annotated[
        str | None,
        typer.Option(
            "--canary-fault",
            help="Start the canary with a server fault (errors, latency, nan, constant, flip, never-ready) "
            "for demos and tests: the release must end rolled_back with the champion serving.",
        ),
    ] = None,
    commit: Annotated[
        str | None,
        typer.Option(
            "--commit", help="The commit that triggered the release; must be the checkout's commit."
        ),
    ] = None,
) -> None:
    """Run the release flow: exit 0 registered/promoted, 1 rejected by a gate or rolled back, 2 error."""
    from slipway.names import exit_code
    from slipway.release.context import prepare
    from slipway.runtime_env import apply_runtime_defaults

    settings = _settings()
    apply_runtime_defaults(settings)
    cfg_path = _config_path(config)
    with _reported(settings, stage="prepare"):  # usage errors before Prefect starts, with a report
        ctx = prepare(
            config_path=cfg_path, data=data, model_uri=model_uri, commit=commit, canary_fault=canary_fault
        )
    with _reported(settings, stage="prepare", model_name=ctx.model_name, data_path=ctx.data_path):
        from flows.release import run_release

        from slipway.orchestration.ephemeral import tethered_ephemeral_server

        tethered_ephemeral_server()  # without PREFECT_API_URL: a temporary server that dies with this command
        result = run_release(
            data=ctx.data_path,
            model_uri=ctx.model_uri,
            config_path=str(cfg_path),
            canary_fault=canary_fault,
            commit=commit,
        )
    _print_result(result, as_json=as_json)
    raise typer.Exit(exit_code(str(result["decision"])))


@contextlib.contextmanager
def _reported(settings: Settings, *, stage: str, **fields: str) -> Iterator[None]:
    """Writes an error report (decision error at `stage`) for any exception escaping the block, then re-raises."""
    try:
        yield
    except Exception as exc:
        from slipway.release.report import write_report
        from slipway.release.result import ReleaseResult

        reason = (
            f"ERROR at stage {stage}: {type(exc).__name__}: {exc}"
            if not isinstance(exc, SlipwayError)
            else f"ERROR at stage {stage}: {exc}"
        )
        result = ReleaseResult.model_validate(
            {"decision": "error", "stage": stage, "reasons": [reason], **fields}
        )
        write_report(result, reports_dir=settings.reports_path())
        raise


def _print_result(result: dict[str, object], *, as_json: bool) -> None:
    typer.echo(f"release {result['decision']} at stage {result['stage']}", err=as_json)
    for reason in result.get("reasons") or []:  # type: ignore[attr-defined]
        typer.echo(f"  - {reason}", err=as_json)
    if result.get("model_version"):
        role = {"promoted": "champion", "rolled_back": "rejected; champion unchanged"}.get(
            str(result["decision"]), "challenger"
        )
        typer.echo(f"model {result['model_name']} version {result['model_version']} ({role})", err=as_json)
    if as_json:
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")


@deploy_app.command("status")
def deploy_status() -> None:
    """What the local target serves now: stable and canary versions, traffic weights, router URL."""
    from slipway.deploy.local import LocalTarget

    target = LocalTarget(settings=_settings())
    state = target.state()
    stable = f"{state.stable.model_name} version {state.stable.model_version}" if state.stable else "nothing"
    typer.echo(f"stable: {stable}")
    canary = f"version {state.canary.model_version}" if state.canary else "none"
    typer.echo(f"canary: {canary} (weight {state.weight}%, shadow {state.shadow}%)")
    typer.echo(f"router: {target.router_url or 'not running'}")
    for part in target.health():
        typer.echo(f"  {part.line()}")
    target.close()


@deploy_app.command("stop")
def deploy_stop() -> None:
    """Stop every process of the local target (router, stable, canary); idempotent."""
    from slipway.deploy.local import LocalTarget

    target = LocalTarget(settings=_settings())
    target.stop_all()
    target.close()
    typer.echo("local target stopped")


@suite_app.command("generate")
def suite_generate(
    out: Annotated[Path, typer.Option("--out", help="Suite JSON file to write.")],
    version: Annotated[
        int, typer.Option("--version", min=1, help="Suite version to stamp (bump on change).")
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Derive it from this CSV/Parquet file (default: the config's data.reference)."
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="Label column of --data (default: the config's data.label_column)."),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="binary, multiclass or regression (default: inferred from the label, and said)."
        ),
    ] = None,
    margin: Annotated[
        float, typer.Option("--margin", min=0.0, help="Range padding, as a share of the range.")
    ] = 0.25,
    tail_share: Annotated[
        float,
        typer.Option(
            "--tail-share", min=0.0, max=0.5, help="Share of values a range check tolerates outside it."
        ),
    ] = 0.01,
    min_rows: Annotated[int, typer.Option("--min-rows", min=1, help="Minimum rows a batch must have.")] = 50,
    max_duplicate_share: Annotated[
        float,
        typer.Option(
            "--max-duplicate-share", min=0.0, max=1.0, help="Largest tolerated share of duplicate rows."
        ),
    ] = 0.05,
    config: ConfigOpt = None,
) -> None:
    """Derive the expectation suite from the reference data (review the diff before committing it)."""
    from slipway.config import DataConfig, load_config
    from slipway.data.reference import load_reference
    from slipway.features.joined import project_reference
    from slipway.validation.suite import build_reference_suite, save_suite, suite_hash

    if task is not None and task not in ("binary", "multiclass", "regression"):
        raise UsageError(f"--task {task!r}: one of binary, multiclass, regression")
    if data is not None:
        cfg_data = DataConfig.model_validate(
            {"reference": str(data.resolve()), "label_column": label or "target", "task": task}
        )
        ref, name = load_reference(cfg_data, base_dir=Path.cwd()), data.stem
    else:
        cfg = load_config(_config_path(config))
        ref, name = project_reference(cfg), cfg.project
    spec = build_reference_suite(
        ref,
        name=name.replace("-", "_"),
        version=version,
        margin=margin,
        tail_share=tail_share,
        min_rows=min_rows,
        max_duplicate_share=max_duplicate_share,
    )
    save_suite(spec, out)
    typer.echo(
        f"wrote {len(spec.expectations)} expectations for a {ref.task} task ({ref.how or 'data.task'}) to {out} "
        f"(sha256 {suite_hash(spec)})",
        err=True,
    )


@app.command("init")
def init_cmd(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Project folder to create (or fill).")],
    data: Annotated[
        Path, typer.Option("--data", help="Your data: a CSV or Parquet file with the label column.")
    ],
    label: Annotated[str, typer.Option("--label", help="The column the model predicts.")],
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="binary, multiclass or regression (default: inferred from the label, and said)."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Project name (default: the folder's name).")
    ] = None,
    framework: Annotated[
        str,
        typer.Option(
            "--framework",
            help="The training entrypoint written: pytorch (an MLP) or sklearn (a scikit-learn Pipeline).",
        ),
    ] = "pytorch",
) -> None:
    """Start a project from your own data: config, suite, training entrypoint; then `slipway release` inside it."""
    from slipway.project.init import init_project

    if task is not None and task not in ("binary", "multiclass", "regression"):
        raise UsageError(f"--task {task!r}: one of binary, multiclass, regression")
    if framework not in ("pytorch", "sklearn"):
        raise UsageError(f"--framework {framework!r}: one of pytorch, sklearn")
    result = init_project(
        directory,
        data=data,
        label=label,
        task=task,  # type: ignore[arg-type]
        name=name,
        framework=framework,  # type: ignore[arg-type]
    )
    typer.echo(f"task: {result.task} ({result.how})")
    if result.classes:
        typer.echo(f"classes (model column order): {result.classes}")
    typer.echo(f"features: {len(result.features)} numeric columns")
    if result.excluded:
        typer.echo(f"left out (not numeric; encode them upstream to use them): {result.excluded}")
    for path in result.files:
        typer.echo(f"wrote {path}")
    typer.echo(
        f"next: cd {directory} && slipway data batch --out data/incoming/batch-1.csv && slipway release"
    )


@app.command("serve")
def serve_cmd(
    model: Annotated[
        Path,
        typer.Option(
            "--model", help="Serving bundle: a folder with model.onnx + model.json, or the .onnx file."
        ),
    ],
    host: Annotated[
        str | None,
        typer.Option("--host", help="Interface to bind (default: $SLIPWAY_SERVE_HOST or 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Port (default: $SLIPWAY_SERVE_PORT or 8080)."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="ONNX Runtime intra-op threads (default 1).")
    ] = None,
    microbatch: Annotated[
        bool | None,
        typer.Option("--microbatch/--no-microbatch", help="Gather concurrent requests into one model call."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="Server processes sharing the port (default 1)."),
    ] = None,
) -> None:
    """Serve a model over HTTP (uvicorn + uvloop/httptools, ONNX Runtime); blocks until SIGTERM, then exits 0. Other knobs: SLIPWAY_SERVE_* env."""
    from slipway.serving.server import run_server
    from slipway.serving.settings import load_serve_settings

    settings = load_serve_settings(
        model=model, host=host, port=port, ort_threads=threads, microbatch=microbatch, workers=workers
    )
    raise typer.Exit(run_server(settings))


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def _ops(config: Path | None) -> OpsContext:
    from slipway.ops.context import open_context
    from slipway.runtime_env import apply_runtime_defaults

    settings = _settings()
    apply_runtime_defaults(settings)  # e.g. no MLflow progress bars on stderr
    return open_context(config_path=_config_path(config), settings=settings)


def _emit(payload: object, lines: list[str], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    else:
        for line in lines:
            typer.echo(line)


@app.command("status")
def status_cmd(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """What serves now: champion version, image digest, since when, and any canary in flight."""
    from slipway.ops.status import current_status, render_status

    status = current_status(_ops(config))
    _emit(status.model_dump(mode="json"), render_status(status), as_json=as_json)


@app.command("history")
def history_cmd(
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many releases.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Releases, newest first: registered versions and gate-rejected attempts, with decisions and reasons."""
    from slipway.ops.history import release_history, render_history
    from slipway.ops.status import read_deploy_view

    ctx = _ops(config)
    entries = release_history(
        registry=ctx.reader(), model_name=ctx.model_name, limit=limit, deploy=read_deploy_view(ctx)
    )
    payload = {"model_name": ctx.model_name, "releases": [e.model_dump(mode="json") for e in entries]}
    _emit(payload, render_history(entries, model_name=ctx.model_name), as_json=as_json)


@app.command("why")
def why_cmd(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="Model version number, e.g. 3.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Provenance of a version: commit, data/suite/config hashes, image digest, optimizer, gate and canary decisions."""
    from slipway.ops.why import provenance, render_provenance

    ctx = _ops(config)
    found = provenance(registry=ctx.reader(), model_name=ctx.model_name, version=version)
    _emit(found.model_dump(mode="json"), render_provenance(found), as_json=as_json)


@app.command("monitor")
def monitor_cmd(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="A batch (CSV/Parquet) to judge instead of the logs; the champion answers it here."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Window of logged predictions, e.g. 30m, 1h, 2d (default: monitor.since)."
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="Delayed ground truth: request_id + label columns (CSV/Parquet/JSONL)."
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift of live inputs and predictions vs the champion's training reference, and live quality when labels
    are given. Exit 0 no drift and no breach, 1 drift or breach, 2 error. Report under <reports>/monitor/."""
    from slipway.errors import UsageError
    from slipway.features.joined import project_reference
    from slipway.monitoring.run import run_monitor

    if data is not None and since is not None:
        raise UsageError("--data and --since exclude each other: judge a batch or a window of the logs")
    ctx = _ops(config)
    target = project_reference(ctx.cfg, settings=ctx.settings).target
    result = run_monitor(
        settings=ctx.settings,
        cfg=ctx.cfg,
        registry=ctx.registry(),
        target=target,
        data=data,
        since=since,
        labels=labels,
    )
    _emit(result.summary(), result.lines(), as_json=as_json)
    raise typer.Exit(result.verdict.exit_code)


@app.command("rollback")
def rollback_cmd(
    reason: Annotated[
        str, typer.Option("--reason", help="Why (recorded on both versions and in the audit log).")
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Version to restore (default: the previous champion recorded on the champion)."
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Audited rollback: redeploy a former champion on the deploy target, then move `champion` to it (exit 2 if refused)."""
    from slipway.ops.rollback import default_actor, render_rollback, run_rollback

    result = run_rollback(_ops(config), to_version=to, reason=reason, actor=default_actor())
    _emit(result.model_dump(mode="json"), render_rollback(result), as_json=as_json)


def main() -> None:
    """Entry point: run the app, turning Slipway errors into `error: ...` and exit code 2."""
    import click

    try:
        code = app(standalone_mode=False)
    except SlipwayError as exc:
        _err(str(exc))
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.Abort:
        _err("aborted")
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("SLIPWAY_DEBUG"):
            raise
        _err(f"{type(exc).__name__}: {exc} (set SLIPWAY_DEBUG=1 for a traceback)")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
