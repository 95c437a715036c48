"""Retry policy shared by the task wrappers: retry transient failures, never a deterministic verdict."""

from __future__ import annotations

from typing import Any

from slipway.errors import SlipwayError


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """False for Slipway's own errors (bad config, bad model, bad data): retrying cannot change them."""
    try:
        state.result()
    except SlipwayError:
        return False
    except Exception:
        return True
    return True
