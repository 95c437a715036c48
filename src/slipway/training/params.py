"""Typed training parameters: an entrypoint may declare them as a pydantic model, checked before anything runs.

An entrypoint `fn(request)` gets `training.params` as the free-form dict the config holds. One that
declares a second parameter annotated with a pydantic model, `fn(request, params: Params)` (or
`params: Params | None = None`, to be callable with a request alone), gets the
config's params validated into that model: an unknown key or a value of the wrong type is a ConfigError
naming `training.params.<key>` before the release starts, and `request.params` holds the validated
values with their defaults filled in, so the run logs what was really used.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from slipway.errors import ConfigError
from slipway.training.base import TrainedModel, TrainFn, TrainingRequest


def params_model(fn: TrainFn) -> type[BaseModel] | None:
    """The pydantic model an entrypoint's second parameter is annotated with; None for `fn(request)`."""
    try:
        positional = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):  # a callable without a signature: the plain contract
        return None
    if len(positional) < 2:
        return None
    try:
        hint = typing.get_type_hints(fn).get(positional[1].name)
    except Exception as exc:  # an annotation that does not resolve is the entrypoint's bug, named
        raise ConfigError(
            f"training.entrypoint {getattr(fn, '__qualname__', fn)!r}: the annotation of its parameter "
            f"{positional[1].name!r} does not resolve: {exc}"
        ) from None
    if typing.get_origin(hint) in (
        typing.Union,
        types.UnionType,
    ):  # `Params | None = None`: callable alone too
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = options[0] if len(options) == 1 else None
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


def check_params(fn: TrainFn, raw: Mapping[str, Any], *, spec: str) -> BaseModel | None:
    """Pure; `raw` validated into the entrypoint's declared model (None when it declares none);
    ConfigError naming `training.params.<key>` for an unknown key or a value of the wrong type."""
    model = params_model(fn)
    if model is None:
        return None
    known = set(model.model_fields)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"training.params.{unknown[0]}: not a parameter of {spec} "
            f"(it takes {', '.join(sorted(known)) or 'none'})"
        )
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(
            f"training.params.{where}: {first['msg']} (got {first.get('input')!r}; {spec} "
            f"declares it in {model.__name__})"
        ) from None


def call_entrypoint(fn: TrainFn, request: TrainingRequest, *, spec: str) -> TrainedModel:
    """Blocking (the entrypoint trains); `fn(request)`, or `fn(request, params)` with `request.params`
    validated into the entrypoint's declared model (its values, defaults filled in, in `request.params`)."""
    typed = check_params(fn, request.params, spec=spec)
    if typed is None:
        return fn(request)
    typed_fn: Any = fn
    return typing.cast(TrainedModel, typed_fn(replace(request, params=typed.model_dump(mode="json")), typed))
