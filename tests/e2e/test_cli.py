"""The `make demo` path and the CLI contract, run as a user runs them: subprocesses on a fresh state folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slipway.deploy.local import LocalTarget
from slipway.locks.base import Holder
from slipway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SLIPWAY = str(Path(sys.executable).parent / "slipway")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "home"


def cli(
    *args: str, home: Path, timeout: int = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SLIPWAY_"))}
    env = base | (env or {}) | {"SLIPWAY_HOME": str(home)}
    return subprocess.run(
        [SLIPWAY, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.image_tools  # builds with buildah when this machine has it
def test_make_demo_promotes_a_good_model_and_rolls_back_a_faulty_canary(home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SLIPWAY_"))}
    env["SLIPWAY_HOME"] = str(home)
    try:
        proc = subprocess.run(
            ["make", "-s", "demo", f"DEMO_DIR={tmp_path}", f"VENV={Path(sys.executable).parents[1]}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        assert "release promoted at stage canary" in out
        assert "release rolled_back at stage canary" in out
        assert "stable: breast-cancer-mlp version 1" in out  # the champion still serves

        from mlflow import MlflowClient

        uri = f"sqlite:///{home / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        champion = client.get_model_version_by_alias("breast-cancer-mlp", "champion")
        assert str(champion.version) == "1"
        for key in ("git_commit", "git_dirty", "data_sha256", "suite_sha256", "training_config_sha256"):
            assert champion.tags[f"slipway.{key}"], key
        for pkg in ("python", "torch", "onnx"):
            assert champion.tags[f"slipway.version.{pkg}"] not in ("", "unknown"), pkg
        faulty = client.get_model_version("breast-cancer-mlp", "2")
        assert faulty.tags["slipway.rejected_at"] == "canary"
        assert "nonfinite" in faulty.tags["slipway.rejection_reason"], faulty.tags["slipway.rejection_reason"]
    finally:
        cli("deploy", "stop", home=home)


def test_ops_commands_answer_on_the_demo_state(home: Path) -> None:
    """status, history, why and rollback refusals on what `make demo` left (its test runs first)."""
    if not (home / "mlflow.db").is_file():
        pytest.skip(
            "needs the state test_make_demo_promotes_a_good_model_and_rolls_back_a_faulty_canary leaves"
        )
    status = cli("status", "--json", home=home)
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert (doc["champion_version"], doc["champion_via"]) == ("1", "promotion")
    assert doc["champion_since"].endswith("+00:00")

    history = cli("history", "--json", home=home)
    assert history.returncode == 0, history.stderr
    releases = json.loads(history.stdout)["releases"]
    assert [(r["version"], r["decision"]) for r in releases] == [("2", "rolled_back"), ("1", "promoted")]
    assert "nonfinite" in releases[0]["reason"]

    why = cli("why", "1", home=home)  # its speed (target <= 2 s) is measured by `make bench` (ops.json)
    assert why.returncode == 0, why.stderr
    assert "git commit: " in why.stdout and "data sha256: " in why.stdout and "shipped: " in why.stdout

    refusals = {
        "9": "version '9' of model breast-cancer-mlp does not exist",
        "2": "version 2 of model breast-cancer-mlp was rejected at stage canary",
    }
    for version, message in refusals.items():
        proc = cli("rollback", "--to", version, "--reason", "test", home=home)
        assert proc.returncode == 2, (version, proc.stdout, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
    bare = cli("rollback", "--reason", "test", home=home)
    assert bare.returncode == 2 and "records no previous champion" in bare.stderr, bare.stderr
    try:  # the demo's test stopped the servers: the champion is redeployed, the registry untouched
        same = cli("rollback", "--to", "1", "--reason", "test", home=home)
        assert same.returncode == 0 and "already the champion" in same.stdout, same.stderr
        assert "redeployed it" in same.stdout
        assert json.loads(cli("status", "--json", home=home).stdout)["deploy"]["stable_version"] == "1"
    finally:
        cli("deploy", "stop", home=home)
    assert not (home / "reports" / "audit.jsonl").exists()  # no rollback happened, nothing audited


def test_release_json_contract_on_a_rejected_batch(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    made = cli("data", "batch", "--out", str(data), "--seed", "9", "--corrupt", "bad-labels", home=home)
    assert made.returncode == 0, made.stderr

    proc = cli("release", "--data", str(data), "--json", home=home)
    assert proc.returncode == 1, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["decision"] == "rejected"
    assert result["stage"] == "validation"
    assert result["model_version"] is None
    assert any("expect_column_values_to_be_in_set [target]" in r for r in result["reasons"])


def test_validate_exit_codes_and_messages(home: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.csv"
    assert cli("data", "batch", "--out", str(good), "--seed", "1", home=home).returncode == 0
    assert (
        cli(
            "data", "batch", "--out", str(bad), "--seed", "2", "--corrupt", "missing-column", home=home
        ).returncode
        == 0
    )

    ok = cli("validate", "--data", str(good), home=home)
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout and "Data Docs: file://" in ok.stdout

    invalid = cli("validate", "--data", str(bad), home=home)
    assert invalid.returncode == 1
    assert "expect_table_columns_to_match_set" in invalid.stdout
    assert "missing: ['mean area']" in invalid.stdout
    assert "[mean area]: column is missing from the batch" in invalid.stdout

    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    cases = {
        "missing file": (["validate", "--data", str(tmp_path / "nope.csv")], "no such file"),
        "wrong format": (
            ["validate", "--data", str(tmp_path / "x.json")],
            "unsupported batch format '.json'",
        ),
        "unreadable": (["validate", "--data", str(garbage)], "cannot be read as parquet"),
        "missing config": (
            ["validate", "--data", str(good), "--config", str(tmp_path / "none.yaml")],
            "config file not found",
        ),
        "unknown corruption": (["data", "batch", "--out", str(bad), "--corrupt", "zzz"], "--corrupt 'zzz'"),
        "release bad data": (["release", "--data", str(tmp_path / "nope.csv")], "no such file"),
    }
    for name, (args, message) in cases.items():
        proc = cli(*args, home=home)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert message in proc.stderr, (name, proc.stderr)
        assert "Traceback" not in proc.stderr, name


def test_bad_config_key_is_named(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "slipway.yaml"
    config.write_text((REPO / "slipway.yaml").read_text().replace("quality_gate:", "quality_gat:"))
    proc = cli("validate", "--data", str(tmp_path / "x.csv"), "--config", str(config), home=home)
    assert proc.returncode == 2
    assert "quality_gat" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_mistyped_training_param_stops_the_release_before_it_starts_and_is_reported(tmp_path: Path) -> None:
    home = tmp_path / "home"
    batch = tmp_path / "batch.csv"
    assert cli("data", "batch", "--out", str(batch), "--seed", "1", home=home).returncode == 0
    config = tmp_path / "slipway.yaml"
    text = (REPO / "slipway.yaml").read_text().replace("expectations/", f"{REPO}/expectations/")
    config.write_text(text.replace("    epochs: 80", '    epochs: "eighty"'))
    proc = cli("release", "--data", str(batch), "--config", str(config), home=home)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "training.params.epochs" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    [report] = [json.loads(p.read_text()) for p in (home / "reports").glob("release-*.json")]
    assert report["decision"] == "error" and report["stage"] == "prepare"
    assert not (home / "mlflow.db").exists()  # nothing was registered or started


def test_a_second_release_on_the_same_state_waits_then_exits_2_naming_the_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    batch = tmp_path / "batch.csv"
    assert cli("data", "batch", "--out", str(batch), "--seed", "1", home=home).returncode == 0
    lock = LocalTarget(settings=Settings(home=home)).release_lock()
    first = Holder(what="release of breast-cancer-mlp from batch-0.csv")  # a live release: this process
    assert lock.try_acquire(first) is None
    try:
        proc = cli("release", "--data", str(batch), home=home, env={"SLIPWAY_RELEASE_LOCK_WAIT_S": "2"})
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert first.what in proc.stderr and str(os.getpid()) in proc.stderr, proc.stderr
        [report] = [json.loads(p.read_text()) for p in (home / "reports").glob("release-*.json")]
        assert (report["decision"], report["stage"], report["model_version"]) == ("error", "prepare", None)
        assert lock.holder() is not None and lock.holder().id == first.id  # type: ignore[union-attr]
    finally:
        lock.release(first)


def test_two_releases_started_together_run_one_after_the_other_and_both_decide(tmp_path: Path) -> None:
    """Two `slipway release` on one state at once: one takes the lease, the other waits for it, then canaries
    against the first one's champion; neither touches the other's canary."""
    home = tmp_path / "home"
    batches = [tmp_path / f"batch-{seed}.csv" for seed in (1, 2)]
    for seed, batch in enumerate(batches, start=1):
        assert cli("data", "batch", "--out", str(batch), "--seed", str(seed), home=home).returncode == 0
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    raw["canary"] |= {"interval_s": 3, "min_samples_per_arm": 300}
    raw["quality_gate"]["max_regression"] = {
        "accuracy": 0.1,
        "roc_auc": 0.1,
    }  # the second one must reach its canary
    config = tmp_path / "slipway.yaml"
    config.write_text(yaml.safe_dump(raw))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SLIPWAY_"))}
    env = base | {"SLIPWAY_HOME": str(home), "SLIPWAY_IMAGE_BUILDER": "fake"}
    files = [(tmp_path / f"out-{i}.txt", tmp_path / f"err-{i}.txt") for i in range(2)]
    runs = [
        subprocess.Popen(
            [SLIPWAY, "release", "--data", str(batch), "--config", str(config), "--json"],
            cwd=REPO,
            env=env,
            stdout=out.open("w"),
            stderr=err.open("w"),
        )
        for batch, (out, err) in zip(batches, files, strict=True)
    ]
    for run in runs:
        run.wait(timeout=600)
    try:
        outs = [(out.read_text(), err.read_text()) for out, err in files]
        results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
        assert [run.returncode for run in runs] == [
            0 if r["decision"] == "promoted" else 1 for r in results
        ], outs
        logs = [out + err for out, err in outs]
        waited = [i for i, log in enumerate(logs) if "waiting up to" in log and "for the release lock" in log]
        assert len(waited) == 1, [log[-2000:] for log in logs]  # exactly one of them waited for the other
        first, second = results[1 - waited[0]], results[waited[0]]
        assert (first["decision"], first["stage"]) == (
            "promoted",
            "canary",
        )  # the first release: no champion yet
        assert second["decision"] in ("promoted", "rolled_back") and second["stage"] == "canary", second[
            "reasons"
        ]
        assert (
            second["champion_version"] == first["model_version"]
        )  # it canaried against the first's champion
        status = json.loads(cli("status", "--json", "--config", str(config), home=home).stdout)
        champion = second["model_version"] if second["decision"] == "promoted" else first["model_version"]
        assert (status["champion_version"], status["deploy"]["stable_version"]) == (champion, champion)
        assert status["deploy"]["canary_version"] is None and status["warnings"] == []
        history = json.loads(cli("history", "--json", "--config", str(config), home=home).stdout)
        assert sorted(e["decision"] for e in history["releases"]) == sorted(r["decision"] for r in results)
    finally:
        cli("deploy", "stop", home=home)  # nothing keeps running, whatever failed


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found.append((int(entry.name), cmdline))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_release_takes_its_temporary_prefect_server_with_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    batch = tmp_path / "batch.csv"
    assert cli("data", "batch", "--out", str(batch), "--seed", "1", home=home).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SLIPWAY_"))}
    proc = subprocess.Popen(
        [SLIPWAY, "release", "--data", str(batch)],
        cwd=REPO,
        env=env | {"SLIPWAY_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, server = time.monotonic() + 120, None
        while server is None and time.monotonic() < deadline and proc.poll() is None:
            server = next((p for p, cmd in _children(proc.pid) if "prefect.server.api.server" in cmd), None)
            time.sleep(0.2)
        assert server is not None, "the release started no Prefect server of its own"
        proc.kill()  # SIGKILL: no exit handler runs
        proc.wait()
        deadline = time.monotonic() + 30
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server), f"Prefect server {server} outlived its release"
    finally:
        proc.kill()
        proc.wait()


def test_help_describes_every_option(home: Path) -> None:
    top = cli("--help", home=home)
    assert top.returncode == 0
    for command in ("data", "validate", "release", "suite", "status", "history", "why", "rollback"):
        assert command in top.stdout
    expected = {
        ("release",): ["--data", "--model-uri", "--config", "--json"],
        ("validate",): ["--data", "--config"],
        ("data", "batch"): ["--out", "--rows", "--seed", "--drift", "--corrupt"],
        ("suite", "generate"): ["--out", "--version", "--margin"],
        ("status",): ["--config", "--json"],
        ("history",): ["--limit", "--json"],
        ("why",): ["VERSION", "--json"],
        ("rollback",): ["--to", "--reason", "--config", "--json"],
    }
    for command, options in expected.items():
        proc = cli(*command, "--help", home=home)
        assert proc.returncode == 0, proc.stderr
        for option in options:
            line = next((ln for ln in proc.stdout.splitlines() if option in ln), "")
            assert line, (command, option)
