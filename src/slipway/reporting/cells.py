"""Table cells people can read: Prefect's table artifacts neither wrap nor scroll a cell, so a long value is
cut where the box ends. Shorten it visibly (…) and keep the full value one click away (a `full` column,
the artifact's raw data, a linked document)."""

from __future__ import annotations

from typing import Final

CELL_LIMIT: Final = 80  # characters that fit a value column of a two-column table in a 1,044 px box


def one_line(text: str) -> str:
    """Pure; the text on one line (newlines become ' / ')."""
    return " / ".join(part.strip() for part in text.splitlines() if part.strip())


def shorten(text: str, limit: int = CELL_LIMIT) -> str:
    """Pure; the text on one line, cut at `limit` characters with a trailing … when longer."""
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def shorten_middle(text: str, limit: int = CELL_LIMIT) -> str:
    """Pure; like `shorten` but keeps both ends (paths, image references, digests: the end tells them apart)."""
    flat = one_line(text)
    if len(flat) <= limit:
        return flat
    head = (limit - 1) // 2
    return flat[:head] + "…" + flat[len(flat) - (limit - 1 - head) :]
