"""Where a release's batch comes from: a file, a folder's newest batch(es), a file:// or http(s) URL."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from slipway.config import BatchesConfig
from slipway.data.batch_io import read_batch
from slipway.data.source import combine, newest_batches, resolve_data
from slipway.errors import DataFormatError, UsageError


def _write(path: Path, rows: list[list[int]], *, mtime: int, columns: tuple[str, ...] = ("a", "b")) -> Path:
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "incoming"
    d.mkdir()
    _write(d / "z-oldest.csv", [[1, 1]], mtime=1_000)
    _write(d / "a-middle.csv", [[2, 2]], mtime=2_000)
    _write(d / "m-newest.csv", [[3, 3]], mtime=3_000)
    (d / "notes.txt").write_text("not a batch")
    return d


def test_newest_is_by_modification_time_not_name(folder: Path) -> None:
    assert [p.name for p in newest_batches(folder, cfg=BatchesConfig())] == ["m-newest.csv"]
    got = newest_batches(folder, cfg=BatchesConfig(newest=2))
    assert [p.name for p in got] == ["a-middle.csv", "m-newest.csv"]  # oldest first


def test_several_newest_batches_are_combined_in_order_once(folder: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    path = resolve_data(None, folder=folder, cfg=BatchesConfig(newest=3), work_dir=work)
    assert read_batch(path)["a"].tolist() == [1, 2, 3]
    assert resolve_data(None, folder=folder, cfg=BatchesConfig(newest=3), work_dir=work) == path


def test_batches_with_different_columns_are_not_combined(tmp_path: Path) -> None:
    one = _write(tmp_path / "one.csv", [[1, 1]], mtime=1)
    two = _write(tmp_path / "two.csv", [[1, 1]], mtime=2, columns=("a", "c"))
    with pytest.raises(DataFormatError, match=r"two.csv: columns differ from one.csv"):
        combine([one, two], work_dir=tmp_path / "work")


def test_an_empty_or_missing_folder_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"batches.location .*nowhere: no such folder"):
        resolve_data(None, folder=tmp_path / "nowhere", cfg=BatchesConfig(), work_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no batch matching '\*.csv'"):
        resolve_data(None, folder=tmp_path / "empty", cfg=BatchesConfig(), work_dir=tmp_path)


def test_paths_folders_and_file_urls(folder: Path, tmp_path: Path) -> None:
    cfg = BatchesConfig()
    file = folder / "a-middle.csv"
    assert resolve_data(str(file), folder=tmp_path, cfg=cfg, work_dir=tmp_path) == file
    assert resolve_data(str(folder), folder=tmp_path, cfg=cfg, work_dir=tmp_path).name == "m-newest.csv"
    assert resolve_data(file.as_uri(), folder=tmp_path, cfg=cfg, work_dir=tmp_path) == file


def test_object_store_schemes_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"scheme s3:// is not read directly; sync the batch"):
        resolve_data("s3://bucket/b.csv", folder=tmp_path, cfg=BatchesConfig(), work_dir=tmp_path)


@pytest.fixture()
def http_folder(folder: Path) -> Iterator[str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_batches_are_downloaded_into_the_work_folder(http_folder: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    path = resolve_data(f"{http_folder}/m-newest.csv", folder=tmp_path, cfg=BatchesConfig(), work_dir=work)
    assert path.parent == work / "batches" and read_batch(path)["a"].tolist() == [3]
    with pytest.raises(UsageError, match=r"missing.csv: cannot download: HTTP Error 404"):
        resolve_data(f"{http_folder}/missing.csv", folder=tmp_path, cfg=BatchesConfig(), work_dir=work)
    assert not list((work / "batches").glob("*.part"))  # no half-written file left
