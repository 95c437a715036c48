"""One contract for every ImageBuilder: the fake always; buildah and docker where they work here.

Real backends skip with their own `available()` reason (what to install or start). buildah needs the
local base image and, for pushes, the loopback registry: `make images-setup` (root) provides both,
and `.ci/run` exports SLIPWAY_BASE_IMAGE / SLIPWAY_IMAGE_REGISTRY / SLIPWAY_BUILDAH_ROOT for them.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from slipway.errors import ImageError
from slipway.images.base import BuiltImage, ImageBuilder, NoBuilder, tag_part
from slipway.images.factory import build_secrets, make_builder
from slipway.images.fake import FakeBuilder
from slipway.images.stage import (
    DOCKERFILE,
    REQUIREMENTS,
    build_and_push,
    image_name,
    public_url,
    stage_context,
)
from slipway.settings import Settings

pytestmark = pytest.mark.image_tools  # buildah/podman: one test process at a time

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
LABELS = {"io.slipway.model.name": "contract", "io.slipway.model.version": "7"}
TINY = """\
ARG BASE_IMAGE=localhost/slipway-base:bookworm-py311
FROM ${BASE_IMAGE}
COPY hello.txt /srv/hello.txt
RUN test -s /srv/hello.txt
"""


def registry_listening(registry: str) -> bool:
    """True when host:port of `registry` accepts a TCP connection."""
    host, _, port = registry.split("/", 1)[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def base_in_storage(builder: ImageBuilder, base_image: str) -> bool:
    """True when the builder's local storage already holds `base_image` (nothing is pulled here)."""
    from slipway.images.buildah import BuildahBuilder

    return builder.has_image(base_image) if isinstance(builder, BuildahBuilder) else True


@pytest.fixture(
    params=[
        "fake",
        pytest.param("buildah", marks=[pytest.mark.integration, pytest.mark.slow]),
        pytest.param("docker", marks=[pytest.mark.integration, pytest.mark.slow]),
    ]
)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def builder(kind: str, settings: Settings) -> ImageBuilder:
    """The backend under test; skipped with its own reason where it cannot build here."""
    made = make_builder(kind, settings=settings)  # type: ignore[arg-type]
    reason = made.available()
    if reason is not None:
        pytest.skip(f"{kind}: {reason}")
    if kind != "fake" and not base_in_storage(made, settings.base_image):
        pytest.skip(
            f"{kind}: base image {settings.base_image} is not in local storage "
            "(run `make images-setup` as root and export SLIPWAY_BASE_IMAGE=localhost/slipway-base:bookworm-py311)"
        )
    return made


@pytest.fixture
def repository(kind: str, settings: Settings) -> str:
    """Where pushes go: the configured registry for real builders (skip if none listens), any name for the fake."""
    if kind == "fake":
        return "registry.invalid/slipway/contract"
    registry = settings.image_registry
    if not registry or not registry_listening(registry):
        pytest.skip(
            f"{kind}: no registry listening (SLIPWAY_IMAGE_REGISTRY={registry}); run `make images-setup`"
        )
    return f"{registry}/contract"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from the image contract\n")
    (ctx / "Dockerfile").write_text(TINY)
    return ctx


def build_tiny(
    builder: ImageBuilder, ctx: Path, settings: Settings, dockerfile: str = "Dockerfile"
) -> BuiltImage:
    return builder.build(
        context=ctx,
        dockerfile=ctx / dockerfile,
        tag="localhost/slipway-contract/tiny:v7",
        build_args={"BASE_IMAGE": settings.base_image},
        labels=LABELS,
    )


class TestImageBuilderContract:
    """Given a tiny Dockerfile over the base image, when built and pushed, then the contract holds."""

    def test_build_returns_the_image_with_its_labels(
        self, builder: ImageBuilder, tiny: Path, settings: Settings
    ) -> None:
        image = build_tiny(builder, tiny, settings)
        assert image.tag == "localhost/slipway-contract/tiny:v7"
        assert image.builder == builder.name
        assert LABELS.items() <= image.labels.items()
        assert builder.size_bytes(image) > 0

    def test_building_twice_gives_the_same_image_id(
        self, builder: ImageBuilder, tiny: Path, settings: Settings
    ) -> None:
        first = build_tiny(builder, tiny, settings)
        second = build_tiny(builder, tiny, settings)
        assert second.image_id == first.image_id

    def test_changed_context_gives_another_image_id(
        self, builder: ImageBuilder, tiny: Path, settings: Settings
    ) -> None:
        first = build_tiny(builder, tiny, settings)
        (tiny / "hello.txt").write_text("another model\n")
        second = build_tiny(builder, tiny, settings)
        assert second.image_id != first.image_id
        builder.remove(second)

    def test_push_returns_a_digest_and_a_pinned_reference(
        self, builder: ImageBuilder, tiny: Path, settings: Settings, repository: str
    ) -> None:
        image = build_tiny(builder, tiny, settings)
        pushed = builder.push(image, repository=repository, tls_verify=settings.image_registry_tls_verify)
        assert DIGEST.match(pushed.digest), pushed.digest
        assert pushed.reference == f"{repository}@{pushed.digest}"
        assert pushed.tag == f"{repository}:v7"

    def test_pushing_the_same_image_twice_gives_the_same_digest(
        self, builder: ImageBuilder, tiny: Path, settings: Settings, repository: str
    ) -> None:
        image = build_tiny(builder, tiny, settings)
        tls = settings.image_registry_tls_verify
        first = builder.push(image, repository=repository, tls_verify=tls)
        second = builder.push(image, repository=repository, tls_verify=tls)
        assert second.digest == first.digest

    def test_broken_dockerfile_raises_image_error_naming_step_and_output(
        self, builder: ImageBuilder, tiny: Path, settings: Settings
    ) -> None:
        (tiny / "Broken.Dockerfile").write_text(TINY + "FROBNICATE /srv/hello.txt\n")
        with pytest.raises(ImageError) as err:
            build_tiny(builder, tiny, settings, dockerfile="Broken.Dockerfile")
        assert err.value.step == "build"
        assert str(err.value).startswith("image build: ")
        assert "FROBNICATE" in str(err.value).upper()

    def test_failing_run_step_raises_image_error_with_the_command_output(
        self, builder: ImageBuilder, tiny: Path, settings: Settings
    ) -> None:
        if builder.name == "fake":
            pytest.skip("the fake runs no commands")
        (tiny / "Failing.Dockerfile").write_text(TINY + "RUN echo broken-step-output >&2 && exit 3\n")
        with pytest.raises(ImageError) as err:
            build_tiny(builder, tiny, settings, dockerfile="Failing.Dockerfile")
        assert err.value.step == "build"
        assert "broken-step-output" in str(err.value)

    def test_remove_twice_is_not_an_error(
        self, builder: ImageBuilder, tiny: Path, settings: Settings
    ) -> None:
        (tiny / "hello.txt").write_text("to be removed\n")
        image = build_tiny(builder, tiny, settings)
        builder.remove(image)
        builder.remove(image)


# --- the factory and the build stage, on the fake -------------------------------------------------


def test_auto_without_any_builder_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither docker nor buildah on PATH
    builder = make_builder("auto", settings=Settings(home=tmp_path))
    assert isinstance(builder, NoBuilder)
    reason = builder.available()
    assert reason is not None and "apt-get install buildah" in reason and "Docker" in reason
    with pytest.raises(ImageError, match="image build: no image builder"):
        builder.build(context=tmp_path, dockerfile=tmp_path / "D", tag="t", build_args={}, labels={})


def test_docker_cli_without_a_daemon_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_docker = tmp_path / "docker"
    fake_docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake_docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = make_builder("docker", settings=Settings(home=tmp_path)).available()
    assert reason is not None and "no daemon answers" in reason and "Cannot connect" in reason


def test_build_secrets_prefer_pip_cert(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    assert build_secrets({"PIP_CERT": str(ca)}) == {"pip-ca": ca}
    assert build_secrets({"PIP_CERT": str(tmp_path / "missing")}).keys() <= {"pip-ca"}


def test_tag_part_and_image_name_are_registry_safe() -> None:
    assert tag_part("127.0.0.1:5000/slipway/m:v1-abc") == "v1-abc"
    assert tag_part("127.0.0.1:5000/slipway/m") == "latest"
    assert image_name("Breast Cancer_MLP!") == "breast-cancer_mlp"
    assert public_url("https://x-access-token:ghs_abc@github.com/o/r.git") == "https://github.com/o/r.git"
    assert public_url("git@github.com:o/r.git") == "git@github.com:o/r.git"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not really onnx")
    (folder / "model.json").write_text('{"model_name": "m"}\n')
    return folder


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """An installed-package-shaped folder: the real Dockerfile, a requirements file, modules, and junk to leave out."""
    root = tmp_path / "site-packages" / "slipway"
    (root / "images/docker").mkdir(parents=True)
    (root / "images/docker/Dockerfile.serve").write_bytes(DOCKERFILE.read_bytes())
    (root / "images/docker/requirements-serve.txt").write_text("numpy==2.4.6\n")
    (root / "serving/__pycache__").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "serving/__main__.py").write_text("")
    (root / "serving/__pycache__/x.pyc").write_bytes(b"junk")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The project's checkout (its git metadata becomes labels): here, a folder git does not know."""
    root = tmp_path / "project"
    root.mkdir()
    return root


def test_stage_context_names_what_is_missing(tmp_path: Path, bundle: Path, package: Path) -> None:
    (bundle / "model.json").unlink()
    (package / "images/docker/requirements-serve.txt").unlink()
    with pytest.raises(ImageError, match=r"image stage: missing .*requirements-serve.txt.*model.json"):
        stage_context(tmp_path / "ctx", bundle_dir=bundle, package_dir=package)


def test_stage_context_holds_only_what_the_image_needs(tmp_path: Path, bundle: Path, package: Path) -> None:
    ctx = stage_context(tmp_path / "ctx", bundle_dir=bundle, package_dir=package)
    top = sorted(p.name for p in ctx.iterdir())
    assert top == ["Dockerfile", "model", "requirements-serve.txt", "slipway"]
    assert sorted(p.name for p in (ctx / "model").iterdir()) == ["model.json", "model.onnx"]
    assert not list(ctx.rglob("__pycache__"))
    assert (ctx / "Dockerfile").read_bytes() == DOCKERFILE.read_bytes()
    assert (ctx / "slipway/serving/__main__.py").is_file()


def test_the_installed_package_carries_the_serving_dockerfile() -> None:
    ctx_files = {DOCKERFILE.name, REQUIREMENTS.name}
    assert ctx_files <= {p.name for p in DOCKERFILE.parent.iterdir()}
    assert "slipway/" in DOCKERFILE.read_text()  # the image takes the package's source, not a checkout


def test_build_and_push_on_the_fake_is_deterministic_and_pinned(
    tmp_path: Path, bundle: Path, repo: Path
) -> None:
    builder = FakeBuilder()
    kwargs = {
        "bundle_dir": bundle,
        "source_dir": repo,
        "model_name": "breast-cancer-mlp",
        "model_version": "3",
        "git_commit": "0123456789abcdef" * 2 + "01234567",
        "registry": "127.0.0.1:5000/slipway",
        "tls_verify": False,
        "base_image": "localhost/slipway-base:bookworm-py311",
        "work_dir": tmp_path / "work",
    }
    first = build_and_push(builder, **kwargs)  # type: ignore[arg-type]
    second = build_and_push(builder, **kwargs)  # type: ignore[arg-type]
    assert first.digest == second.digest and first.digest is not None and DIGEST.match(first.digest)
    assert first.reference == f"127.0.0.1:5000/slipway/breast-cancer-mlp@{first.digest}"
    assert first.tag == "localhost/slipway/breast-cancer-mlp:v3-0123456789ab"
    assert first.labels["io.slipway.model.version"] == "3"
    assert first.labels["org.opencontainers.image.revision"] == kwargs["git_commit"]
    assert first.builder == "fake" and first.size_mb >= 0 and first.push_s is not None


def test_build_and_push_without_registry_builds_only(tmp_path: Path, bundle: Path, repo: Path) -> None:
    record = build_and_push(
        FakeBuilder(),
        bundle_dir=bundle,
        source_dir=repo,
        model_name="m",
        model_version="1",
        git_commit="f" * 40,
        registry=None,
        tls_verify=True,
        base_image="python:3.11-slim",
        work_dir=tmp_path,
    )
    assert record.digest is None and record.reference is None and record.push_s is None


def test_build_and_push_with_no_builder_raises_the_reason(tmp_path: Path, bundle: Path, repo: Path) -> None:
    with pytest.raises(ImageError, match="install buildah"):
        build_and_push(
            FakeBuilder(unavailable_reason="no image builder: install buildah (apt-get install buildah)"),
            bundle_dir=bundle,
            source_dir=repo,
            model_name="m",
            model_version="1",
            git_commit="f" * 40,
            registry=None,
            tls_verify=True,
            base_image="python:3.11-slim",
        )
