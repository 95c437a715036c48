"""Resolve the configured `module:function` entrypoint and hash the code behind it."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import cast

from slipway.errors import ConfigError
from slipway.training.base import TrainFn


def load_entrypoint(spec: str) -> TrainFn:
    """Import `module:function`; ConfigError naming training.entrypoint if it cannot be found."""
    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"training.entrypoint {spec!r}: cannot import module {module_name!r}: {exc}"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(
            f"training.entrypoint {spec!r}: module {module_name!r} has no function {func_name!r}"
        )
    return cast(TrainFn, func)


def code_hash(spec: str) -> str:
    """sha256 of the source file that defines the entrypoint (the training code's identity)."""
    func = load_entrypoint(spec)
    path = inspect.getsourcefile(func)
    if path is None:
        raise ConfigError(f"training.entrypoint {spec!r}: no source file to hash")
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()
