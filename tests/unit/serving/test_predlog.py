"""Prediction records: the file and stdout sinks, the size cap, sampling, the config that turns them on per
target, and the reader the monitor uses (rotation, torn lines, pod stdout, other models, widths, since)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slipway.config import PipelineConfig, parse_config
from slipway.errors import ConfigError
from slipway.serving.predlog import EVENT, PredictionLog, encode_record
from slipway.serving.predlog_read import log_files, read_prediction_logs
from slipway.serving.settings import ServeSettings, serve_env
from tests.unit.serving.conftest import started

KEYS = ["event", "schema", "ts", "request_id", "model_name", "model_version", "inputs", "outputs"]


class Writes(io.StringIO):
    """A stream that keeps every write call apart."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, s: str) -> int:
        self.calls.append(s)
        return super().write(s)


def outputs(n: int) -> dict[str, Any]:
    return {"predictions": [{"label": "a", "probabilities": {"a": 0.75, "b": 0.25}}] * n}


def log_to(stream: io.StringIO, **kwargs: Any) -> PredictionLog:
    plog = PredictionLog(sink="stdout", stream=stream, sample_rate=1.0, max_record_bytes=64 << 10, **kwargs)
    plog.start()
    return plog


def record(plog: PredictionLog, rid: str, inputs: np.ndarray, out: dict[str, Any] | None = None) -> None:
    plog.record(
        request_id=rid,
        model_name="m",
        model_version="1",
        inputs=inputs,
        outputs=outputs(len(inputs)) if out is None else out,
    )


def line(
    rid: str,
    rows: list[list[float | None]],
    *,
    ts: float = 1000.0,
    model: str = "m",
    version: str = "1",
    cap: int = 64 << 10,
) -> str:
    payload = {
        "event": EVENT,
        "schema": 1,
        "ts": ts,
        "request_id": rid,
        "model_name": model,
        "model_version": version,
        "inputs": np.asarray(rows, dtype=np.float32),
        "outputs": {"predictions": [{"value": i} for i in range(len(rows))]},
    }
    return encode_record(payload, max_record_bytes=cap) + "\n"


# --- the sinks ----------------------------------------------------------------------------------------


def test_the_stdout_sink_writes_each_record_as_one_whole_line_with_the_event_first() -> None:
    stream = Writes()
    plog = log_to(stream)
    for k in range(3):
        record(plog, f"r{k}", np.full((2, 3), k + 0.5, dtype=np.float32))
    plog.stop()
    plog.stop()  # idempotent
    assert len(stream.calls) == 3 and all(c.endswith("\n") and c.count("\n") == 1 for c in stream.calls)
    docs = [json.loads(c) for c in stream.calls]
    assert all(c.startswith('{"event":"slipway.prediction","schema":1,') for c in stream.calls)
    assert [list(d) for d in docs] == [KEYS] * 3
    assert [d["request_id"] for d in docs] == ["r0", "r1", "r2"]
    assert docs[2]["inputs"] == [[2.5] * 3] * 2 and docs[2]["outputs"] == outputs(2)


def test_an_oversized_request_is_logged_without_its_body() -> None:
    stream = Writes()
    plog = PredictionLog(sink="stdout", stream=stream, sample_rate=1.0, max_record_bytes=1024)
    plog.start()
    record(plog, "big", np.ones((100, 30), dtype=np.float32))  # 3000 numbers: over the cap at once
    record(plog, "wide", np.full((4, 30), 0.123456789, dtype=np.float32))  # ~2.6 KB serialized
    record(plog, "small", np.ones((1, 3), dtype=np.float32))
    plog.stop()
    big, wide, small = (json.loads(c) for c in stream.calls)
    for doc, rows in ((big, 100), (wide, 4)):
        assert doc["truncated"] is True and doc["rows"] == rows
        assert "inputs" not in doc and "outputs" not in doc
    assert all(len(c) <= 1024 + 1 for c in stream.calls)
    assert small["inputs"] == [[1.0, 1.0, 1.0]] and "truncated" not in small


def test_non_finite_numbers_become_null_and_a_bad_record_never_stops_the_writer() -> None:
    stream = Writes()
    plog = log_to(stream)
    record(plog, "nan", np.array([[np.nan, 1.0, np.inf]], dtype=np.float32), {"predictions": [float("nan")]})
    record(plog, "odd", np.ones((1, 3), dtype=np.float32), {"predictions": [object()]})
    record(plog, "after", np.ones((1, 3), dtype=np.float32))
    plog.stop()
    nan, odd, after = (json.loads(c) for c in stream.calls)
    assert nan["inputs"] == [[None, 1.0, None]] and nan["outputs"] == {"predictions": [None]}
    assert "inputs" not in odd and odd["rows"] == 1 and "not JSON-serializable" in odd["error"]
    assert after["request_id"] == "after"


def test_sampling_at_zero_logs_nothing_and_at_one_everything() -> None:
    def draws(rate: float) -> int:
        plog = PredictionLog(
            sink="stdout", stream=io.StringIO(), sample_rate=rate, max_record_bytes=256, seed=1
        )
        return sum(plog.sampled() for _ in range(2000))

    assert (draws(0.0), draws(1.0)) == (0, 2000)
    assert 100 < draws(0.1) < 300


def test_the_file_sink_rotates_and_the_reader_reads_every_file_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "m.jsonl"
    plog = PredictionLog(
        sink="file", path=path, sample_rate=1.0, max_bytes=2048, backups=3, max_record_bytes=64 << 10
    )
    plog.start()
    for k in range(40):
        record(plog, f"r{k:02d}", np.full((1, 4), k, dtype=np.float32))
    plog.stop()
    files = log_files(path)
    assert [p.name for p in files] == ["m.jsonl.3", "m.jsonl.2", "m.jsonl.1", "m.jsonl"]
    got = read_prediction_logs([path])
    kept = sum(len(p.read_text().splitlines()) for p in files)
    assert got.counts.files == 4 and got.counts.read == kept < 40  # the oldest rotated out
    assert got.request_ids == sorted(got.request_ids) and got.request_ids[-1] == "r39"
    assert got.rows.shape == (kept, 4) and got.rows[-1].tolist() == [39.0] * 4
    assert np.all(np.diff(got.ts) >= 0)


def test_the_file_sink_needs_a_path() -> None:
    with pytest.raises(ValueError, match="path"):
        PredictionLog(sink="file", sample_rate=1.0, max_record_bytes=256)
    with pytest.raises(ConfigError, match="log_predictions_path"):
        from slipway.serving.settings import load_serve_settings

        load_serve_settings(log_predictions="file")


def test_a_server_with_the_stdout_sink_prints_its_records(
    bundle_dir: Path, rows: np.ndarray, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with started(ServeSettings(model=bundle_dir, log_predictions="stdout", log_sample_rate=1.0)) as client:
        rid = client.post("/predict", json={"instances": rows[:2].tolist()}).json()["request_id"]
    saved = tmp_path / "pod.log"  # what `kubectl logs` would show
    saved.write_text(capsys.readouterr().out)
    got = read_prediction_logs([saved])
    assert got.request_ids == [rid, rid] and got.model_versions == ["3", "3"]
    np.testing.assert_allclose(got.rows, rows[:2], rtol=1e-6)


# --- the reader -----------------------------------------------------------------------------------------


def test_a_torn_last_line_and_invalid_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    whole = line("a", [[1, 2]]) + '{"event":"slipway.prediction","schema":1,"ts":\n' + line("b", [[3, 4]])
    path.write_text(whole + line("c", [[5, 6]])[:40])  # the writer is mid-line
    got = read_prediction_logs([path])
    c = got.counts
    assert (c.read, c.skipped_invalid, c.skipped_torn) == (2, 1, 1)
    assert got.request_ids == ["a", "b"] and got.rows.tolist() == [[1, 2], [3, 4]]
    path.write_text(whole + line("c", [[5, 6]]).rstrip("\n"))  # a saved file without its last newline
    assert read_prediction_logs([path]).request_ids == ["a", "b", "c"]


def test_pod_stdout_yields_only_the_records_of_the_asked_model(tmp_path: Path) -> None:
    path = tmp_path / "pod.log"
    path.write_text(
        "INFO:     Started server process [7]\n"
        + line("a", [[1, 2], [3, 4]])
        + '{"level":"info","msg":"another program logs JSON"}\n'
        + '{"event":"other.thing","note":"slipway.prediction lookalike"}\n'
        + "[pod/serve-stable-x/server] "
        + line("b", [[5, 6]])  # kubectl logs --prefix
        + line("z", [[7, 8]], model="other")
        + line("t", [[0] * 2] * 500, cap=256)
        + 'INFO:     127.0.0.1:5 - "POST /predict HTTP/1.1" 200 OK\n'
    )
    got = read_prediction_logs([path], model_name="m")
    c = got.counts
    assert (c.read, c.rows, c.skipped_not_prediction, c.skipped_other_model, c.skipped_truncated) == (
        2,
        3,
        4,
        1,
        1,
    )
    assert got.request_ids == ["a", "a", "b"] and got.outputs == [{"value": 0}, {"value": 1}, {"value": 0}]
    assert read_prediction_logs([path]).counts.read == 3  # no model asked: every model's records


def test_rows_of_another_width_are_counted_not_returned(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        line("a", [[1, 2, 3]]) + line("b", [[4, 5]]) + line("c", [[6, 7, 8]]) + line("n", [[None, 1, 2]])
    )
    got = read_prediction_logs([path])
    assert got.n_features == 3 and got.request_ids == ["a", "c", "n"]
    assert got.counts.schema_mismatch == 1 and got.counts.widths == {3: 3, 2: 1}
    assert np.isnan(got.rows[2, 0]) and got.rows[2, 1:].tolist() == [1, 2]
    asked = read_prediction_logs([path], n_features=2)
    assert asked.request_ids == ["b"] and asked.counts.schema_mismatch == 3
    text = line("s", [[9, 9, 9]]).replace("[[9.0,", '[["x",').replace("[[9,", '[["x",')
    path.write_text(
        path.read_text() + text + line("ragged", [[1, 2, 3]]).replace("[[1.0,2.0,3.0]]", "[[1],[2,3]]")
    )
    mixed = read_prediction_logs([path])
    assert mixed.request_ids == ["a", "c", "n"] and mixed.counts.skipped_invalid == 2


def test_since_keeps_the_recent_records_and_files_merge_in_time_order(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl.1").write_text(line("old", [[1]], ts=100) + line("mid", [[2]], ts=300))
    (tmp_path / "p.jsonl").write_text(line("new", [[3]], ts=400) + line("early", [[4]], ts=250))
    (tmp_path / "p.jsonl.x").write_text(line("not-a-sibling", [[5]], ts=500))
    got = read_prediction_logs([tmp_path / "p.jsonl", tmp_path / "p.jsonl"], since=200)
    assert got.request_ids == ["early", "mid", "new"] and got.ts.tolist() == [250, 300, 400]
    assert (got.counts.files, got.counts.skipped_before_since) == (2, 1)
    empty = read_prediction_logs([tmp_path / "absent.jsonl"])
    assert (empty.counts.files, empty.rows.shape, empty.n_features) == (0, (0, 0), None)


def test_a_hundred_thousand_lines_read_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    one = line("r", [[0.123456789] * 30])
    path.write_text(one * 100_000)
    start = time.perf_counter()
    got = read_prediction_logs([path])
    elapsed = time.perf_counter() - start
    assert got.rows.shape == (100_000, 30) and elapsed < 10, elapsed


# --- the project config ---------------------------------------------------------------------------------


def config(tmp_path: Path, **raw: Any) -> PipelineConfig:
    return parse_config(raw, source="slipway.yaml", base_dir=tmp_path)


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServeSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ServeSettings()


def test_the_local_target_logs_to_a_file_beside_the_config_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path)
    assert cfg.prediction_sink() == "file"
    settings = settings_from(serve_env(cfg), monkeypatch)
    assert settings.prediction_sink() == "file"
    assert settings.log_predictions_path == tmp_path / ".slipway" / "predictions" / "breast-cancer-mlp.jsonl"
    assert (settings.log_sample_rate, settings.log_backups, settings.log_max_record_bytes) == (
        0.1,
        5,
        64 << 10,
    )
    mine = config(
        tmp_path, serving={"prediction_log": {"path": "logs/p.jsonl", "sample_rate": 1, "backups": 2}}
    )
    env = serve_env(mine)
    assert env["SLIPWAY_SERVE_LOG_PREDICTIONS_PATH"] == str(tmp_path / "logs" / "p.jsonl")
    assert (env["SLIPWAY_SERVE_LOG_SAMPLE_RATE"], env["SLIPWAY_SERVE_LOG_BACKUPS"]) == ("1.0", "2")
    assert serve_env(config(tmp_path, serving={"prediction_log": {"sink": "off"}})) == {}


@pytest.mark.parametrize(
    "deploy", [{"target": "kubernetes"}, {"target": "local", "local": {"runtime": "podman"}}]
)
def test_containers_log_to_stdout_and_refuse_the_file_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deploy: dict[str, Any]
) -> None:
    env = serve_env(config(tmp_path, deploy=deploy))
    assert (
        env["SLIPWAY_SERVE_LOG_PREDICTIONS"] == "stdout" and "SLIPWAY_SERVE_LOG_PREDICTIONS_PATH" not in env
    )
    assert settings_from(env, monkeypatch).prediction_sink() == "stdout"
    with pytest.raises(ConfigError, match="file is only for the local target"):
        config(tmp_path, deploy=deploy, serving={"prediction_log": {"sink": "file"}})


def test_every_prediction_log_field_is_described() -> None:
    from slipway.config import PredictionLogConfig

    assert all(f.description for f in PredictionLogConfig.model_fields.values())
    assert ServeSettings().prediction_sink() == "off"  # a bare server logs nothing
