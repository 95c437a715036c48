"""Example entrypoint of the shipped project (`slipway.yaml`): the tabular MLP on the breast-cancer data.

Kept as its own name so existing configs and registered lineage (`slipway.model_source`) stay valid.
"""

from __future__ import annotations

from slipway.examples.tabular import DEFAULTS, MLP, train

__all__ = ["DEFAULTS", "MLP", "train"]
