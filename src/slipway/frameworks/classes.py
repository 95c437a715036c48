"""Which output column is which class: a model's own class labels against the project's class order."""

from __future__ import annotations

from collections.abc import Sequence

from slipway.errors import ModelContractError
from slipway.evaluation.target import Target, plain_label


def class_order(labels: Sequence[object] | None, *, target: Target, what: str) -> list[int] | None:
    """Pure; the column order that puts a classifier's columns in `target.classes` order (None: already so).

    Rules: 1. regression, or a model that does not name its classes (`labels` None): its columns are
    taken as given (the contract's order). 2. Labels that are the project's labels (as values, any
    order): their columns are reordered to the project's order. 3. Labels 0..K-1 that are not the
    project's labels: class indices (a model trained on `request.y()`), already in order. 4. Anything
    else: ModelContractError naming `what`, its classes and the project's.
    """
    if not target.classification or labels is None:
        return None
    own = [plain_label(v) for v in labels]
    wanted = list(target.classes)
    if sorted(map(str, own)) == sorted(map(str, wanted)) and len(set(map(str, own))) == len(own):
        index = {str(v): i for i, v in enumerate(own)}
        order = [index[str(c)] for c in wanted]
        return None if order == list(range(len(order))) else order
    if own == list(range(len(wanted))):
        return None
    raise ModelContractError(
        f"{what} predicts the classes {own}, but the project's label {target.label!r} has the classes "
        f"{wanted}: train on the label column (or on request.y() class indices)"
    )
