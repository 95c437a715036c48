"""A Feast repository as Slipway reads it: its config with the online store overridden, the definitions in
its Python files, where its local files live, and the canonical documents the definition hashes cover.

Every function that touches Feast imports it inside (importing Feast takes ~5-7 s).

Online-store override (`features.online_store`, or SLIPWAY_FEATURES_ONLINE_STORE): the repository's
feature_store.yaml is read as Feast reads it (environment variables expanded), its `online_store` mapping is
replaced, and the result is handed to `feast.FeatureStore(config=...)`; no file of the repository changes.
`redis://[:PASSWORD@]HOST:PORT[/DB]` becomes Feast's `{type: redis, connection_string: "HOST:PORT,db=DB"}`,
`sqlite:///PATH` a SQLite file (relative paths against the slipway.yaml folder; `sqlite:////ABS` absolute).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import yaml

from slipway.errors import FeatureStoreError

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore
    from feast.repo_config import RepoConfig
    from feast.repo_contents import RepoContents

YAML_NAME = "feature_store.yaml"
# Feast's metrics module exports a temporary multiprocess-metrics folder into os.environ when imported: every
# child process (model servers started by a release or a test) would inherit it and share one metrics folder
_FEAST_ENV = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def import_feast() -> None:
    """Blocking (~4 s, the first time); imports Feast, leaving os.environ's multiprocess-metrics folders as they were."""
    if "feast.feature_store" in sys.modules:
        return
    before = {key: os.environ.get(key) for key in _FEAST_ENV}
    try:
        import feast
        import feast.feature_store  # noqa: F401
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# Proto keys that never change a value served: bookkeeping, documentation, and pickled UDF bytes (the UDF's
# source text, `udfString`/`bodyText`, stays in the document)
_NOT_DEFINITION = frozenset(
    {
        "meta",
        "description",
        "tags",
        "owner",
        "createdTimestamp",
        "lastUpdatedTimestamp",
        "loggingConfig",
        "udf",
    }
)
_IMPORT_LOCK = threading.Lock()


def online_store_override(url: str, *, base_dir: Path) -> dict[str, Any]:
    """Pure; Feast's `online_store` mapping for a redis:// or sqlite:/// URL; FeatureStoreError for others."""
    parts = urlsplit(url)
    if parts.scheme == "redis":
        if not parts.hostname:
            raise FeatureStoreError(f"online store {url!r}: no host (redis://HOST:PORT[/DB])")
        conn = f"{parts.hostname}:{parts.port or 6379}"
        db = parts.path.strip("/")
        if db:
            conn += f",db={int(db)}"
        if parts.password:
            conn += f",password={unquote(parts.password)}"
        return {"type": "redis", "connection_string": conn}
    if parts.scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        return {"type": "sqlite", "path": str(path if path.is_absolute() else (base_dir / path).resolve())}
    raise FeatureStoreError(
        f"online store {url!r}: use redis://HOST:PORT[/DB] or sqlite:///PATH (sqlite:////ABSOLUTE/PATH)"
    )


def _raw_config(root: Path, *, online_store: dict[str, Any] | None) -> dict[str, Any]:
    path = root / YAML_NAME
    if not path.is_file():
        raise FeatureStoreError(f"{root}: not a Feast repository (no {YAML_NAME})")
    try:
        raw = yaml.safe_load(os.path.expandvars(path.read_text()))  # as Feast reads it
    except (OSError, yaml.YAMLError) as exc:
        raise FeatureStoreError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise FeatureStoreError(f"{path}: not a mapping")
    if online_store is not None:
        raw["online_store"] = online_store
    return raw


def load_repo_config(root: Path, *, online_store: dict[str, Any] | None) -> RepoConfig:
    """Blocking (imports Feast); `root`'s feature_store.yaml as Feast loads it, `online_store` replacing its own."""
    import_feast()
    from feast.repo_config import RepoConfig

    raw = _raw_config(root, online_store=online_store)
    try:
        config = RepoConfig(**raw)
    except Exception as exc:
        raise FeatureStoreError(f"{root / YAML_NAME}: {type(exc).__name__}: {exc}") from None
    config.repo_path = root
    return config


@dataclass(frozen=True)
class RepoFacts:
    """What the caches need from feature_store.yaml, read WITHOUT importing Feast (a cached call stays fast)."""

    registry: Path | None  # the local registry file; None for a remote or SQL registry
    online_type: str  # sqlite, redis, or another Feast online store type
    online_id: str  # `sqlite:///ABS`, `redis://HOST:PORT,db=N` (no password), else TYPE:sha256:...
    sqlite: Path | None  # the SQLite online store file
    redis: str | None  # Feast's connection string of a plain (not cluster/sentinel) Redis

    def generated_files(self) -> list[Path]:
        """Pure; files Feast writes inside the repository (registry, SQLite online store): not its content."""
        return [f for f in (self.registry, self.sqlite) if f is not None]


def _local(root: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (root / candidate).resolve()


def repo_facts(root: Path, *, online_store: dict[str, Any] | None) -> RepoFacts:
    """Blocking (reads feature_store.yaml); its `RepoFacts`, Feast's defaults filled in (registry type file,
    online store sqlite at data/online.db, Redis at localhost:6379); relative paths against `root`."""
    raw = _raw_config(root, online_store=online_store)
    registry = raw.get("registry")
    reg: dict[str, Any] = {"path": registry} if isinstance(registry, str) else dict(registry or {})
    reg_path = str(reg.get("path", ""))
    local_registry = reg.get("registry_type", "file") == "file" and reg_path and "://" not in reg_path
    online = raw.get("online_store", "sqlite")
    conf: dict[str, Any] = {"type": online} if isinstance(online, str) else dict(online or {"type": "sqlite"})
    kind = str(conf.get("type", "sqlite"))
    sqlite = redis = None
    if kind == "sqlite":
        sqlite = _local(root, str(conf.get("path", "data/online.db")))
        online_id = f"sqlite:///{sqlite}"
    elif kind == "redis":
        conn = str(conf.get("connection_string", "localhost:6379"))
        redis_type = str(conf.get("redis_type", "redis"))
        redis = conn if redis_type == "redis" else None
        online_id = f"{redis_type}://" + ",".join(p for p in conn.split(",") if not p.startswith("password="))
    else:
        blob = json.dumps(conf, sort_keys=True, default=str)
        online_id = f"{kind}:sha256:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"
    return RepoFacts(
        registry=_local(root, reg_path) if local_registry else None,
        online_type=kind,
        online_id=online_id,
        sqlite=sqlite,
        redis=redis,
    )


def redis_client(connection_string: str) -> Any:
    """Non-blocking (connects on first command); a redis-py client for Feast's `host:port,db=N,password=...`."""
    from redis import Redis

    from slipway.features.resp import split_connection_string

    host, port, kwargs = split_connection_string(connection_string)
    return Redis(host=host, port=int(port or 6379), socket_timeout=5, **kwargs)


def local_path(config: RepoConfig, path: str) -> Path:
    """Pure; a path of feature_store.yaml resolved as Feast does (relative to the repository)."""
    assert config.repo_path is not None
    return _local(Path(config.repo_path), path)


@contextlib.contextmanager
def _importable(root: Path) -> Iterator[None]:
    """The repository's modules importable by their names (`features`), and forgotten again afterwards, so a
    second repository (or a changed copy) with the same module names is read afresh. The working directory is
    left alone (a release runs tasks in threads): Feast's module naming is pointed at `root` instead."""
    import_feast()
    from feast import repo_operations

    def module_name(path: Path) -> str:
        return path.relative_to(root).with_suffix("").as_posix().replace("/", ".")

    names = {module_name(p) for p in root.rglob("*.py")}
    with _IMPORT_LOCK:
        saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
        original = repo_operations.py_path_to_module  # names modules relative to the cwd
        sys.path.insert(0, str(root))
        repo_operations.py_path_to_module = module_name
        importlib.invalidate_caches()
        try:
            yield
        finally:
            repo_operations.py_path_to_module = original
            sys.path.remove(str(root))
            for name in names:
                sys.modules.pop(name, None)
            sys.modules.update(saved)


def parse_definitions(root: Path, *, project: str) -> RepoContents:
    """Blocking (imports the repository's Python files); its Feast objects, as `feast apply` collects them."""
    import_feast()
    from feast.project import Project
    from feast.repo_operations import parse_repo

    root = root.resolve()
    try:
        with _importable(root):
            repo = parse_repo(root)
    except Exception as exc:
        raise FeatureStoreError(f"{root}: the definitions do not load: {type(exc).__name__}: {exc}") from None
    if not repo.projects:
        repo.projects.append(Project(name=project))
    elif [p.name for p in repo.projects] != [project]:
        names = [p.name for p in repo.projects]
        raise FeatureStoreError(
            f"{root}: Project objects {names} do not match feature_store.yaml's {project!r}"
        )
    return repo


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in sorted(value.items()) if k not in _NOT_DEFINITION}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _spec(obj: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    doc: dict[str, Any] = _clean(MessageToDict(obj.to_proto().spec))
    return doc


def view_doc(store: FeatureStore, name: str) -> dict[str, Any]:
    """Blocking (registry); a view's canonical definition: its spec (fields and dtypes, entity columns, TTL,
    batch source with path, timestamp fields and field mapping, online flag, version, an on-demand view's
    transformation source and mode) and its entities' specs (join key, value type)."""
    try:
        view: Any = store.get_feature_view(name)
    except Exception:
        view = store.get_on_demand_feature_view(name)
    entities = sorted(getattr(view, "entities", None) or [])
    return {
        "kind": type(view).__name__,
        "view": _spec(view),
        "entities": {e: _spec(store.get_entity(e)) for e in entities if e != "__dummy"},
    }


def service_doc(store: FeatureStore, service: FeatureService) -> dict[str, Any]:
    """Blocking (registry); what `service_hash` covers: the service's projections (views, selected features and
    their dtypes, aliases, join-key maps, in order) and `view_doc` of every view they project."""
    spec = _spec(service)
    views = [p.name for p in service.feature_view_projections]
    return {"service": spec, "views": {name: view_doc(store, name) for name in views}}


def sha256_doc(doc: Any) -> str:
    """Pure; sha256 of canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
