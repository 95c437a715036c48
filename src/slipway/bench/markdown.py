"""Pure renderers for `make bench` documents: the optimization benchmark's JSON in, markdown out."""

from __future__ import annotations

from typing import Any


def _num(value: Any, fmt: str = ".4g") -> str:
    return "—" if value is None else format(value, fmt)


def _x(value: Any) -> str:
    return "—" if value is None else f"{value:.3g}×"


def _lat(row: dict[str, Any], batch: int) -> str:
    p50, p99 = row["p50_ms"].get(str(batch)), row["p99_ms"].get(str(batch))
    return "—" if p50 is None else f"{_num(p50)} / {_num(p99)}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _candidate_table(run: dict[str, Any]) -> list[str]:
    lines = [
        "| candidate | status | accuracy | Δ points | size KB | load ms | p50 / p99 b1 (ms) "
        "| p50 / p99 b32 (ms) | vs fp32 (b1) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in run["candidates"].items():
        size = None if row["size_bytes"] is None else row["size_bytes"] / 1024
        speed = row["speedup_vs_fp32"]
        lines.append(
            f"| {name}{' **(shipped)**' if name == run['shipped'] else ''} | {row['status']} "
            f"| {_num(row['accuracy'], '.4f')} | {_num(row['accuracy_delta_points'], '+.2f')} "
            f"| {_num(size, '.1f')} | {_num(row['load_ms'], '.3g')} | {_lat(row, 1)} | {_lat(row, 32)} "
            f"| {'—' if speed is None else f'{speed:+.1%}'} | {_cell(row['verdict'])} |"
        )
    return lines


def _ratio_line(r: dict[str, Any]) -> str:
    return (
        f"ORT FP32 / torch p50: b1 {_x(r['ort_fp32_over_torch_p50_b1'])}, "
        f"b32 {_x(r['ort_fp32_over_torch_p50_b32'])}; INT8 dynamic / FP32: b1 {_x(r['int8_over_fp32_p50_b1'])}, "
        f"b32 {_x(r['int8_over_fp32_p50_b32'])}; INT8 static / FP32: b1 {_x(r['int8_static_over_fp32_p50_b1'])}, "
        f"b32 {_x(r['int8_static_over_fp32_p50_b32'])}; INT8 Δ accuracy: dynamic "
        f"{_num(r['int8_accuracy_delta_points'], '+.2f')}, static {_num(r['int8_static_accuracy_delta_points'], '+.2f')} points"
    )


def _model_section(name: str, section: dict[str, Any]) -> list[str]:
    lines = [
        f"## {name}: {section['description']}",
        "",
        f"{section['parameters']:,} parameters; {section['train_rows']} training rows, "
        f"{section['holdout_rows']} holdout rows; ONNX opset {section['export']['opset']}, "
        f"{section['export']['size_bytes'] / 1024:.1f} KB.",
        "",
        f"* {section['parity']['summary']}",
        f"* {section['reasons'][0]}",
        f"* {_ratio_line(section['ratios'])}",
        "",
        f"{section['threads']} thread:",
        "",
        *_candidate_table(section),
    ]
    for threads, run in section["more_threads"].items():
        lines += ["", f"{threads} threads (shipped: **{run['shipped']}**):", "", *_candidate_table(run)]
    return [*lines, ""]


def render_markdown(doc: dict[str, Any]) -> str:
    """Pure; the benchmark document as markdown: machine, protocol, headline vs targets, one table per model."""
    m, p, t = doc["machine"], doc["protocol"], doc["targets"]
    vnni = f"avx512_vnni {'yes' if m['avx512_vnni'] else 'no'}, avx_vnni {'yes' if m['avx_vnni'] else 'no'}"

    def verdict(key: str) -> str:
        return f"{t[key]['target']} | {'met' if t[key]['met'] else '**missed**'}"

    lines = [
        "# Optimization benchmark" + (" (quick: numbers are not meaningful)" if doc["quick"] else ""),
        "",
        f"* machine: {m['cpu']}, {m['cores']} usable cores, {vnni} (INT8 is only faster with VNNI); "
        f"onnxruntime {m['onnxruntime']}, torch {m['torch']}; {m['timestamp']}",
        f"* protocol: threads {p['threads']} (ORT intra-op and torch), batches {p['batches']}, warm-up "
        f"{p['warmup']}, {p['rounds']} interleaved rounds x {p['iterations']} calls, load = median of "
        f"{p['load_repeats']}; timed on holdout rows; ratios are {p['ratio']}; wall {doc['wall_s']} s",
        "",
        f"## Headline: the shipped example model ({doc['shipped_model']}, 1 thread)",
        "",
        "| ratio | value | target | |",
        "|---|---|---|---|",
        f"| ORT FP32 / PyTorch eager, p50 batch 1 | {_x(doc['ort_fp32_over_torch_p50_b1'])} "
        f"| {verdict('ort_fp32_over_torch_p50_b1')} |",
        f"| ORT FP32 / PyTorch eager, p50 batch 32 | {_x(doc['ort_fp32_over_torch_p50_b32'])} | — | |",
        f"| INT8 dynamic / FP32, p50 batch 1 | {_x(doc['int8_over_fp32_p50_b1'])} | — | |",
        f"| INT8 static QDQ / FP32, p50 batch 1 | {_x(doc['int8_static_over_fp32_p50_b1'])} | — | |",
        f"| INT8 dynamic − FP32 accuracy (points) | {_num(doc['int8_accuracy_delta_points'], '+.2f')} "
        f"| {verdict('int8_accuracy_delta_points')} |",
        f"| shipped candidate | {doc['shipped']} | | |",
        "",
    ]
    for name, section in doc["models"].items():
        lines += _model_section(name, section)
    lines += _frameworks_section(doc.get("frameworks") or {})
    return "\n".join(lines)


def _frameworks_section(frameworks: dict[str, Any]) -> list[str]:
    """Pure; ORT FP32 against each native model, p50 at every batch (the ratio < 1 means ORT is faster)."""
    if not frameworks:
        return []
    lines = [
        "## Frameworks: ORT FP32 against the native model (1 thread, breast-cancer holdout)",
        "",
        "| model | batch | ORT p50 ms | native p50 ms | ORT / native | parity |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in frameworks.items():
        for batch, p50 in row["p50_ms"].items():
            ort, native = p50["ort_fp32"], next(v for k, v in p50.items() if k != "ort_fp32")
            lines.append(
                f"| {name}: {row['description']} | {batch} | {ort:.4f} | {native:.4f} "
                f"| {_x(row['ort_over_native_p50'][batch])} | {row['parity'].split(':')[0]} |"
            )
    return [*lines, ""]
