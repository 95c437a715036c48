"""Fit a ready ONNX graph (a converter's or a user's) to the serving contract without changing its maths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slipway.errors import ModelContractError
from slipway.evaluation.target import Target
from slipway.frameworks.base import Exported
from slipway.frameworks.classes import class_order
from slipway.hashing import file_sha256
from slipway.optimize.export import INPUT_NAME, OUTPUT_NAME

FLOAT, DOUBLE = 1, 11  # onnx.TensorProto.FLOAT / DOUBLE
_TYPE_NAMES = {1: "float32", 6: "int32", 7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "float64"}
_ORDER = "slipway_class_order"


@dataclass(frozen=True)
class GraphFacts:
    """What a graph reads and answers, as the contract sees it."""

    input_name: str
    output_name: str
    output_type: int
    labels: list[Any] | None  # the classes an ai.onnx.ml classifier node names, in its column order
    probabilities: bool  # the output is a classifier's probabilities (an ML classifier or a Softmax)


def _type_of(value: Any) -> str:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return kind or "unknown"
    dims = ["?" if not d.dim_value else str(d.dim_value) for d in value.type.tensor_type.shape.dim]
    return f"{_TYPE_NAMES.get(value.type.tensor_type.elem_type, 'type ' + str(value.type.tensor_type.elem_type))}[{', '.join(dims)}]"


def describe_io(model: Any) -> str:
    """Pure; `inputs [X: float32[?, 4]] -> outputs [label: int64[?], probabilities: float32[?, 2]]`."""
    feeds = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    return (
        f"inputs [{', '.join(f'{i.name}: {_type_of(i)}' for i in feeds)}] -> "
        f"outputs [{', '.join(f'{o.name}: {_type_of(o)}' for o in model.graph.output)}]"
    )


def _labels(model: Any) -> list[Any] | None:
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings" and attr.strings:
                return [s.decode() for s in attr.strings]
            if attr.name == "classlabels_int64s" and attr.ints:
                return list(attr.ints)
    return None


def graph_facts(model: Any, *, n_features: int | None) -> GraphFacts:
    """Pure; the graph's one float32 input and first float output; ModelContractError naming the I/O that does not fit.

    `n_features` None: the input's width is not checked.
    """
    io = describe_io(model)
    feeds = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(feeds) != 1 or feeds[0].type.tensor_type.elem_type != FLOAT:
        raise ModelContractError(
            f"the ONNX model has {io}; Slipway serves one float32 input [N, {n_features or 'n_features'}] (the schema's "
            "features in order): convert with a single float tensor input"
        )
    dims = feeds[0].type.tensor_type.shape.dim
    if len(dims) != 2 or (n_features is not None and dims[1].dim_value and dims[1].dim_value != n_features):
        raise ModelContractError(
            f"the ONNX model has {io}; the project's schema has {n_features} feature(s), so the input must be "
            f"float32[N, {n_features}]"
        )
    if dims[0].dim_value:
        raise ModelContractError(f"the ONNX model has {io}: its batch axis is fixed, it must be dynamic")
    outputs = [
        o
        for o in model.graph.output
        if o.type.WhichOneof("value") == "tensor_type" and o.type.tensor_type.elem_type in (FLOAT, DOUBLE)
    ]
    if not outputs:
        raise ModelContractError(
            f"the ONNX model has {io}: no float output to serve (a scikit-learn classifier converted with "
            "ZipMap answers dictionaries: convert with options zipmap=False)"
        )
    out = outputs[0]
    producer = next((n for n in model.graph.node if out.name in n.output), None)
    labels = _labels(model)
    return GraphFacts(
        input_name=feeds[0].name,
        output_name=out.name,
        output_type=out.type.tensor_type.elem_type,
        labels=labels,
        probabilities=labels is not None or (producer is not None and producer.op_type == "Softmax"),
    )


def contract_graph(model: Any, *, target: Target, n_features: int | None) -> Any:
    """Pure; a copy answering under the contract: input `input`, one output `logits` (float32, columns in
    `target.classes` order); the graph's own nodes are kept, other outputs dropped; ModelContractError if it cannot fit."""
    import onnx
    from onnx import helper

    facts = graph_facts(model, n_features=n_features)
    order = class_order(facts.labels, target=target, what="the ONNX model")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for node in graph.node:
        node.input[:] = [INPUT_NAME if name == facts.input_name else name for name in node.input]
    graph.input[[i.name for i in graph.input].index(facts.input_name)].name = INPUT_NAME
    tail, nodes = facts.output_name, []
    if facts.output_type == DOUBLE:
        nodes.append(helper.make_node("Cast", [tail], ["slipway_as_float"], to=FLOAT))
        tail = "slipway_as_float"
    if order is not None:
        graph.initializer.append(helper.make_tensor(_ORDER, onnx.TensorProto.INT64, [len(order)], order))
        nodes.append(helper.make_node("Gather", [tail, _ORDER], [OUTPUT_NAME], axis=1))
    elif tail != OUTPUT_NAME:
        nodes.append(helper.make_node("Identity", [tail], [OUTPUT_NAME]))
    graph.node.extend(nodes)
    chosen = next(o for o in graph.output if o.name == facts.output_name)
    shape = [d.dim_param or (d.dim_value or None) for d in chosen.type.tensor_type.shape.dim]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, FLOAT, shape or None))
    if not any(o.domain in ("", "ai.onnx") for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("", 13))
    return out


def run_graph(model: Any, x: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """Blocking; ONNX Runtime CPU on a contract graph held in memory: the first output for x, float64."""
    from slipway.optimize.runtime import open_session

    session = open_session(model.SerializeToString(), threads=threads)
    return np.asarray(
        session.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0], dtype=np.float64
    )


def save_graph(model: Any, *, path: Path, converter: str) -> Exported:
    """Blocking; writes a contract graph to `path` and checks it (`check_onnx`); OptimizationError if it is not valid."""
    import onnx

    from slipway.optimize.export import check_onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    check_onnx(path)
    opsets = {o.domain: o.version for o in model.opset_import}
    return Exported(
        path=path,
        sha256=file_sha256(path),
        opset=int(opsets.get("", opsets.get("ai.onnx", 0))),
        size_bytes=path.stat().st_size,
        converter=converter,
    )
