"""`make bench`, chaos part: the kill-point matrix on the local target (issue 12).

Each kill point runs a real `slipway release` (CLI, temporary Prefect server, SQLite MLflow, local
target, in-memory image builder) on a scratch state and, at a chosen moment, SIGKILLs one process:
- the release itself when a stage starts (its log line), at each canary phase (the shadow phase and
  each weight, read from the local target's `deployment.json`) and just after the canary's verdict;
- once each, with the release left running: the router, the stable server and the canary server.

Then it checks the invariants:
1. `champion`: unchanged, unless the killed release's version was promoted (its decision tag says so).
2. `stable_only`: once the canary's traffic lease runs out (or at once, without a canary) the router
   sends the canary nothing, and live requests are all answered by the stable; the time from the kill
   to "stable only" is measured.
3. `no_orphans`: no process of this state is left but the target's recorded router, servers and
   supervisor (/proc scan: command line or environment naming the scratch folder).
4. `converges`: the next release (a new batch) ends with a decision (exit 0 or 1, never an error), and
   then the target serves the champion with no canary, and every part is ready.
5. `registry`: after it, every version carries a decision (`slipway.decision`), and a version the killed
   release registered without one is marked `error` + `slipway.interrupted` (`killed_version_marked`).
For a process kill the release's own end is checked instead of (2): it ends with a decision (never a
crash) and the champion is consistent with it; a killed stable or router is healed on its port.

Writes OUT/chaos.json (`kill_points`, `invariant_checks`, `violations`, worst kill-to-stable-only
seconds) and OUT/chaos.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from slipway.release.pipeline import ACTIVITY

REPO = Path(__file__).resolve().parents[3]
STAGE_POINTS = tuple(ACTIVITY)  # every stage that logs its start, in pipeline order
CANARY_POINTS = ("shadow", "weight-5", "weight-25", "weight-50")
PROCESS_POINTS = ("router", "stable", "canary")
QUICK_POINTS = ("stage:register", "canary:weight-25", "process:stable")
RELEASE_TIMEOUT_S = 420.0
POLL_S = 0.05
TRIES = 3  # batches tried per kill point (the quality gate may reject one before the point comes)


@dataclass
class Point:
    """One kill point and what was found after it."""

    name: str
    killed: str = ""  # what was killed, and when (seconds after the release started)
    reached: bool = True  # False: the release ended before the point came
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stable_only_s: float | None = None
    heal_s: float | None = None  # a killed router or stable: until it answers again on its port
    interrupted: list[str] = field(default_factory=list)  # the killed release's versions marked interrupted
    converge_s: float | None = None

    def check(self, name: str, ok: bool, why: str = "") -> None:
        self.checks[name] = ok
        if not ok:
            self.notes.append(f"{name}: {why}")


def _slipway() -> str:
    return str(Path(sys.executable).parent / "slipway")


class World:
    """A scratch project: config (fast canary, local target, in-memory images), its env, batches."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
        raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
        raw["deploy"] = {**raw.get("deploy", {}), "target": "local", "load_rps": 100}
        raw["canary"] = {**raw["canary"], "interval_s": 3, "min_samples_per_arm": 300, "deadline_s": 300}
        raw["quality_gate"]["max_regression"] = {
            "accuracy": 0.1,
            "roc_auc": 0.1,
        }  # releases reach their canary
        self.config = root / "slipway.yaml"
        self.config.write_text(yaml.safe_dump(raw))
        self.model = str(raw["registry"]["model_name"])
        self.label = str(raw["data"]["label_column"])
        self.experiment = str(raw["registry"]["experiment"])
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SLIPWAY_"))
        }
        self.env |= {
            "SLIPWAY_HOME": str(self.home),
            "SLIPWAY_CONFIG": str(self.config),
            "SLIPWAY_IMAGE_BUILDER": "fake",
            "SLIPWAY_RELEASE_LOCK_TTL_S": "10",
        }

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_slipway(), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def batch(self, seed: int) -> Path:
        path = self.root / f"batch-{seed}.csv"
        if not path.exists():
            done = self.cli("data", "batch", "--out", str(path), "--seed", str(seed))
            if done.returncode != 0:
                raise RuntimeError(f"slipway data batch failed: {done.stderr[-2000:]}")
        return path

    def release(self, batch: Path) -> tuple[int, float, str]:
        """A whole release: (exit code, seconds, the end of its output)."""
        start = time.monotonic()
        done = self.cli("release", "--data", str(batch), timeout=RELEASE_TIMEOUT_S)
        return done.returncode, time.monotonic() - start, (done.stdout + done.stderr)[-3000:]

    def state(self) -> dict[str, Any]:
        path = self.home / "deploy" / "local" / "deployment.json"
        with contextlib.suppress(OSError, ValueError):
            doc: dict[str, Any] = json.loads(path.read_text())
            return doc
        return {}

    def status(self) -> dict[str, Any]:
        done = self.cli("status", "--json")
        if done.returncode != 0:
            raise RuntimeError(f"slipway status failed: {done.stderr[-2000:]}")
        doc: dict[str, Any] = json.loads(done.stdout)
        return doc

    def versions(self) -> dict[str, dict[str, str]]:
        """Every version's tags, read straight from the SQLite store."""
        from slipway.registry.sqlite_reader import SqliteVersionReader

        db = self.home / "mlflow.db"
        if not db.exists():
            return {}
        reader = SqliteVersionReader(db_path=db, experiment=self.experiment)
        return {v.version: v.tags for v in reader.list_versions(model_name=self.model)}


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def processes_of(root: Path) -> dict[int, str]:
    """Live processes whose command line or environment names `root` (pid -> command line)."""
    needle = str(root).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (needle in cmdline or needle in environ) and _pid_alive(int(entry.name)):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]
    return found


def recorded_pids(state: dict[str, Any]) -> set[int]:
    return {int(state[r]["pid"]) for r in ("router", "stable", "canary", "supervisor") if state.get(r)}


def _router_health(state: dict[str, Any]) -> dict[str, Any] | None:
    import httpx

    router = state.get("router")
    if not router:
        return None
    try:
        resp = httpx.get(f"http://127.0.0.1:{router['port']}/router/healthz", timeout=2, trust_env=False)
        doc: dict[str, Any] = resp.json()
        return doc
    except (httpx.HTTPError, ValueError):
        return None


def _answers(state: dict[str, Any], rows: list[list[float]], n: int) -> dict[str, int]:
    """model_version of n live answers through the router ('error' for a failure)."""
    import httpx

    seen: dict[str, int] = {}
    router = state.get("router")
    if not router:
        return {"no router": n}
    with httpx.Client(base_url=f"http://127.0.0.1:{router['port']}", timeout=5, trust_env=False) as client:
        for i in range(n):
            try:
                resp = client.post("/predict", json={"instances": [rows[i % len(rows)]]})
                key = str(resp.json()["model_version"]) if resp.status_code == 200 else "error"
            except (httpx.HTTPError, ValueError, KeyError):
                key = "error"
            seen[key] = seen.get(key, 0) + 1
    return seen


def _rows(batch: Path, *, label: str, n: int = 20) -> list[list[float]]:
    import pandas as pd

    frame = pd.read_csv(batch).drop(columns=[label])
    return [[float(x) for x in row] for row in frame.head(n).to_numpy()]


class Run:
    """One `slipway release` in the background, its output lines in a queue."""

    def __init__(self, world: World, batch: Path) -> None:
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            [_slipway(), "release", "--data", str(batch)],
            env=world.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.tail: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def new_lines(self) -> list[str]:
        got = []
        while True:
            try:
                got.append(self.lines.get_nowait())
            except queue.Empty:
                break
        self.tail = (self.tail + got)[-40:]
        return got

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _reached(point: str, run: Run, world: World, lines: list[str]) -> bool:
    kind, what = point.split(":", 1)
    if kind == "stage":
        from slipway.release.pipeline import started_line

        return any(started_line(what) in line for line in lines)
    if kind == "after" and what == "canary":
        return any("stage canary: passed" in line or "stage canary: rejected" in line for line in lines)
    state = world.state()
    if not state.get("canary") or not state.get("stable"):
        return False
    weight, shadow = int(state.get("weight", 0)), int(state.get("shadow", 0))
    if kind == "canary":
        return shadow > 0 and weight == 0 if what == "shadow" else weight == int(what.split("-")[1])
    return kind == "process" and weight >= 25  # a process kill waits for real canary traffic


def _kill_at(point: str, run: Run, world: World) -> tuple[bool, dict[str, Any]]:
    """Blocking until the point comes (then the kill) or the release ends; (reached, state at the kill)."""
    kind, what = point.split(":", 1)
    while run.proc.poll() is None and run.elapsed() < RELEASE_TIMEOUT_S:
        if _reached(point, run, world, run.new_lines()):
            state = world.state()
            if kind == "process":
                os.kill(int(state[what]["pid"]), signal.SIGKILL)
            else:
                run.proc.kill()  # SIGKILL of the CLI alone: what it started must not outlive it
                run.proc.wait()
            return True, state
        time.sleep(POLL_S)
    run.proc.kill()
    run.proc.wait()
    return False, world.state()


def _stable_only(world: World, *, timeout_s: float) -> float | None:
    """Seconds until the router gives the canary no traffic (no canary, or its lease ran out); None: never."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        state = world.state()
        health = _router_health(state)
        if not state.get("canary"):
            return time.monotonic() - start
        if health is not None and (
            not health.get("canary_live", True) or (health.get("weight"), health.get("shadow")) == (0, 0)
        ):
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def _healed(world: World, role: str, old: dict[str, Any], *, timeout_s: float) -> float | None:
    """Seconds until `role` runs again as a new process on its old port and answers; None if not in time."""
    import httpx

    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        now = world.state().get(role) or {}
        if int(now.get("pid", old["pid"])) != int(old["pid"]) and int(now.get("port", -1)) == int(
            old["port"]
        ):
            path = "/router/healthz" if role == "router" else "/readyz"
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{old['port']}{path}"
                if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                    return time.monotonic() - start
        time.sleep(0.05)
    return None


def _champion(status: dict[str, Any]) -> str | None:
    value = status.get("champion_version")
    return None if value is None else str(value)


def run_point(world: World, point: str, *, seed: int) -> Point:
    """Blocking (a release to the point, the checks, a converging release); the point's findings."""
    result = Point(name=point)
    batch = world.batch(seed)
    rows = _rows(batch, label=world.label)
    before = _champion(world.status())
    known = set(world.versions())
    run = Run(world, batch)
    reached, at_kill = _kill_at(point, run, world)
    result.reached = reached
    if not reached:
        result.notes.append(
            f"never reached; the release ended {run.proc.returncode}: {''.join(run.tail)[-800:]}"
        )
        return result
    kind, what = point.split(":", 1)
    result.killed = f"{what if kind == 'process' else 'the release'} at {run.elapsed():.1f} s"

    if kind == "process":  # the release goes on: it must end with a decision, the target healed
        if what in ("router", "stable"):
            result.heal_s = _healed(world, what, at_kill[what], timeout_s=30.0)
            result.check(
                "healed_on_same_port",
                result.heal_s is not None,
                f"no new {what} on port {at_kill[what]['port']} within 30 s: {world.state().get(what)}",
            )
        try:
            code = run.proc.wait(timeout=RELEASE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            code = -9
        run.new_lines()
        result.check("release_decides", code in (0, 1), f"exit {code}: {''.join(run.tail)[-600:]}")
        status = world.status()
        deploy = status.get("deploy", {})
        result.check(
            "target_consistent",
            deploy.get("stable_version") == _champion(status) and deploy.get("canary_version") is None,
            f"serves {deploy.get('stable_version')} (canary {deploy.get('canary_version')}), "
            f"champion {_champion(status)}",
        )
        if what == "canary":
            result.check("canary_death_rolls_back", code == 1 and _champion(status) == before, f"exit {code}")
    else:
        status = world.status()
        after = _champion(status)
        promoted = after is not None and world.versions().get(after, {}).get("slipway.decision") == "promoted"
        result.check(
            "champion",
            after == before or (promoted and after != before),
            f"champion {before} -> {after} without a completed promotion",
        )
        lease_s = 2 * 3 + 15 + 5  # two windows + the controller's slack, + 5 s to see it
        result.stable_only_s = _stable_only(world, timeout_s=lease_s + 10)
        if result.stable_only_s is None:
            result.check("stable_only", False, "the canary still had traffic after its lease")
        else:
            state = world.state()
            stable_version = str(((state.get("stable") or {}).get("release") or {}).get("model_version"))
            seen = _answers(state, rows, 40) if state.get("stable") else {}
            result.check(
                "stable_only",
                not state.get("stable") or seen == {stable_version: 40},
                f"answers {seen}, stable is version {stable_version}",
            )
        time.sleep(1.0)  # a process that is stopping gets a moment
        orphans = {
            pid: cmd
            for pid, cmd in processes_of(world.root).items()
            if pid not in recorded_pids(world.state())
        }
        result.check("no_orphans", not orphans, f"left running: {orphans}")
    killed_versions = sorted(set(world.versions()) - known, key=int)
    # the next release (another batch: a new release, not a re-run of the killed one) converges
    code, seconds, tail = world.release(world.batch(seed + 500))
    result.converge_s = seconds
    status = world.status()
    deploy = status.get("deploy", {})
    result.check("converges", code in (0, 1), f"exit {code} (an error, not a decision): {tail[-600:]}")
    result.check(
        "converged_target",
        deploy.get("stable_version") == _champion(status)
        and deploy.get("canary_version") is None
        and all(h.split(": ")[1].startswith(("ready", "running")) for h in deploy.get("health", [])),
        f"deploy {deploy}",
    )
    versions = world.versions()
    undecided = [v for v, tags in versions.items() if not tags.get("slipway.decision")]
    if kind != "process":
        unmarked = [
            v
            for v in killed_versions
            if versions[v].get("slipway.decision") == "error" and not versions[v].get("slipway.interrupted")
        ]
        result.interrupted = [v for v in killed_versions if versions[v].get("slipway.interrupted")]
        result.check(
            "killed_version_marked", not unmarked, f"killed versions not marked interrupted: {unmarked}"
        )
    result.check("registry", not undecided, f"versions without a decision: {undecided}")
    return result


def points(*, quick: bool) -> list[str]:
    """The matrix: every stage start, every canary phase, the canary's verdict, and each process."""
    if quick:
        return list(QUICK_POINTS)
    return (
        [f"stage:{s}" for s in STAGE_POINTS]
        + [f"canary:{c}" for c in CANARY_POINTS]
        + ["after:canary"]
        + [f"process:{p}" for p in PROCESS_POINTS]
    )


def run(out_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Blocking (about 1.5 min per kill point); writes chaos.json and chaos.md and returns the document."""
    started = time.monotonic()
    found: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="slipway-bench-chaos-") as scratch:
        world = World(Path(scratch))
        code, _, tail = world.release(world.batch(1))  # a champion to protect
        if code != 0:
            raise RuntimeError(f"the first release failed ({code}): {tail}")
        try:
            for i, point in enumerate(points(quick=quick)):
                for attempt in range(
                    TRIES
                ):  # a release the gate rejects never reaches a canary point: another batch
                    result = run_point(world, point, seed=10 + i + 100 * attempt)
                    if result.reached:
                        break
                found.append(result)
                bad = [k for k, ok in result.checks.items() if not ok]
                sys.stderr.write(f"chaos {point}: {'OK' if not bad else 'VIOLATED ' + ', '.join(bad)}\n")
        finally:
            world.cli("deploy", "stop")
    doc = _document(found, seconds=time.monotonic() - started, quick=quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "chaos.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out_dir / "chaos.md").write_text("\n".join(_markdown(doc)) + "\n")
    return doc


def _document(found: list[Point], *, seconds: float, quick: bool) -> dict[str, Any]:
    checks = sum(len(p.checks) for p in found)
    violations = [f"{p.name}: {n}" for p in found for n in p.notes if p.reached]
    unreached = [p.name for p in found if not p.reached]
    stable_only = [p.stable_only_s for p in found if p.stable_only_s is not None]
    healed = [p.heal_s for p in found if p.heal_s is not None]
    return {
        "kill_points": len(found),
        "invariant_checks": checks,
        "violations": len([v for p in found for v in p.checks.values() if not v]),
        "violation_details": violations,
        "unreached_points": unreached,
        "worst_kill_to_stable_only_s": round(max(stable_only), 2) if stable_only else None,
        "worst_kill_to_healed_s": round(max(healed), 2) if healed else None,
        "canary_lease_s": 2 * 3 + 15,
        "points": [
            {
                "name": p.name,
                "killed": p.killed,
                "reached": p.reached,
                "checks": p.checks,
                "kill_to_stable_only_s": None if p.stable_only_s is None else round(p.stable_only_s, 2),
                "kill_to_healed_s": None if p.heal_s is None else round(p.heal_s, 2),
                "marked_interrupted": p.interrupted,
                "next_release_s": None if p.converge_s is None else round(p.converge_s, 1),
                "notes": p.notes,
            }
            for p in found
        ],
        "quick": quick,
        "seconds": round(seconds, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _markdown(doc: dict[str, Any]) -> list[str]:
    lines = [
        "# Kill-point matrix (local target)",
        "",
        f"{doc['kill_points']} kill points, {doc['invariant_checks']} invariant checks, "
        f"**{doc['violations']} violations**; worst kill -> stable only {doc['worst_kill_to_stable_only_s']} s "
        f"(canary lease {doc['canary_lease_s']} s); worst kill -> healed on its port "
        f"{doc['worst_kill_to_healed_s']} s; {doc['seconds']} s in all.",
        "",
        "| kill point | killed | checks | kill -> stable only s | kill -> healed s | next release s |",
        "|---|---|---|---|---|---|",
    ]
    for p in doc["points"]:
        checks = ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in p["checks"].items()) or "not reached"
        lines.append(
            f"| {p['name']} | {p['killed'] or '-'} | {checks} | {p['kill_to_stable_only_s']} "
            f"| {p['kill_to_healed_s']} | {p['next_release_s']} |"
        )
    lines += [f"- {v}" for v in doc["violation_details"]]
    return lines
