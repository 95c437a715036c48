"""Reading and writing batch files (CSV, Parquet) with errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slipway.errors import DataFormatError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def batch_format(path: Path) -> str:
    """The format implied by the file suffix; DataFormatError for an unknown one."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataFormatError(
            f"{path}: unsupported batch format {path.suffix!r}; use one of {sorted(FORMATS)}"
        )
    return fmt


def read_batch(path: Path) -> pd.DataFrame:
    """Read a batch file; DataFormatError if it is missing, unreadable or not a table."""
    fmt = batch_format(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        if fmt == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: file is empty (not even a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataFormatError(f"{path}: cannot be read as {fmt}: {exc}") from None
    except ImportError as exc:
        raise DataFormatError(f"{path}: reading {fmt} needs an extra package: {exc}") from None


def write_batch(frame: pd.DataFrame, path: Path) -> None:
    """Write a batch in the format its suffix names, creating the folder."""
    fmt = batch_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    except ImportError as exc:
        raise DataFormatError(f"{path}: writing {fmt} needs an extra package: {exc}") from None
