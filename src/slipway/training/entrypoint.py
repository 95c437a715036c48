"""Resolve the configured `module:function` entrypoint and hash the code behind it.

The config's folder is importable: a `train.py` next to `slipway.yaml` is `train:train`, with no
PYTHONPATH to set (the folder goes at the front of `sys.path`). A module from that folder is pickled
by value (cloudpickle), so a cached model of a class defined there loads in any later process.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from pathlib import Path
from typing import cast

from slipway.errors import ConfigError
from slipway.training.base import TrainFn


def load_entrypoint(spec: str, *, project_dir: Path | None = None) -> TrainFn:
    """Import `module:function` (from `project_dir` first); ConfigError naming training.entrypoint if absent."""
    module_name, _, func_name = spec.partition(":")
    folder = str(project_dir.resolve()) if project_dir is not None else None
    if folder is not None and folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        where = f" (looked in {folder} and the installed packages)" if folder else ""
        raise ConfigError(
            f"training.entrypoint {spec!r}: cannot import module {module_name!r}{where}: {exc}"
        ) from None
    source = getattr(module, "__file__", None)
    if folder is not None and source and Path(source).resolve().is_relative_to(folder):
        import cloudpickle  # type: ignore[import-untyped]

        cloudpickle.register_pickle_by_value(module)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(
            f"training.entrypoint {spec!r}: module {module_name!r} has no function {func_name!r}"
        )
    return cast(TrainFn, func)


def code_hash(spec: str, *, project_dir: Path | None = None) -> str:
    """sha256 of the source file that defines the entrypoint (the training code's identity)."""
    func = load_entrypoint(spec, project_dir=project_dir)
    path = inspect.getsourcefile(func)
    if path is None:
        raise ConfigError(f"training.entrypoint {spec!r}: no source file to hash")
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
