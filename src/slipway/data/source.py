"""Where a release's batch comes from: a path, a file:// or http(s):// URL, or the newest batch(es) in a folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd

from slipway.config import BatchesConfig
from slipway.data.batch_io import FORMATS, read_batch, write_batch
from slipway.errors import DataFormatError, UsageError

_URL_TIMEOUT_S = 60.0


def newest_batches(folder: Path, *, cfg: BatchesConfig) -> list[Path]:
    """Non-blocking; the `cfg.newest` newest files matching `cfg.pattern` in `folder`, oldest first; UsageError if none."""
    if not folder.is_dir():
        raise UsageError(f"batches.location {folder}: no such folder (where new batches land)")
    files = [p for p in folder.glob(cfg.pattern) if p.is_file() and p.suffix.lower() in FORMATS]
    if not files:
        raise UsageError(
            f"batches.location {folder}: no batch matching {cfg.pattern!r} "
            f"(supported formats: {', '.join(sorted(FORMATS))})"
        )
    files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return files[-cfg.newest :]


def combine(batches: list[Path], *, work_dir: Path) -> Path:
    """Blocking; one batch file for several (rows concatenated in order); the file itself for one; content-addressed."""
    if len(batches) == 1:
        return batches[0]
    frames = [read_batch(p) for p in batches]
    columns = list(frames[0].columns)
    for path, frame in zip(batches[1:], frames[1:], strict=True):
        if list(frame.columns) != columns:
            raise DataFormatError(
                f"{path}: columns differ from {batches[0].name}; batches combined into one release "
                "must share one schema"
            )
    key = hashlib.sha256("\n".join(f"{p.resolve()}:{p.stat().st_mtime_ns}" for p in batches).encode())
    out = work_dir / "batches" / f"combined-{key.hexdigest()[:16]}.csv"
    if not out.exists():
        write_batch(pd.concat(frames, ignore_index=True), out)
    return out


def fetch(url: str, *, work_dir: Path) -> Path:
    """Blocking; downloads an http(s) batch into `work_dir/batches` (named by URL hash); UsageError on failure."""
    name = Path(urllib.parse.urlparse(url).path).name or "batch.csv"
    if Path(name).suffix.lower() not in FORMATS:
        raise DataFormatError(
            f"{url}: unsupported batch format; the URL path must end in one of {sorted(FORMATS)}"
        )
    out = work_dir / "batches" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(out.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=_URL_TIMEOUT_S) as response, partial.open("wb") as fh:
            shutil.copyfileobj(response, fh)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(f"data {url}: cannot download: {exc}") from None
    os.replace(partial, out)
    return out


def resolve_data(data: str | None, *, folder: Path, cfg: BatchesConfig, work_dir: Path) -> Path:
    """Blocking; the local batch file for a release: `data` (path, file:// or http(s):// URL) or the newest in `folder`."""
    if not data:
        return combine(newest_batches(folder, cfg=cfg), work_dir=work_dir)
    scheme = urllib.parse.urlparse(data).scheme
    if scheme in ("http", "https"):
        return fetch(data, work_dir=work_dir)
    if scheme == "file":
        return Path(urllib.parse.unquote(urllib.parse.urlparse(data).path))
    if scheme and len(scheme) > 1:  # a Windows drive letter is not a scheme
        raise UsageError(
            f"data {data!r}: scheme {scheme}:// is not read directly; sync the batch to a folder "
            "(batches.location) or serve it over https"
        )
    path = Path(data)
    if path.is_dir():
        return combine(newest_batches(path, cfg=cfg), work_dir=work_dir)
    return path
