"""Fit a ready ONNX graph (a converter's or a user's) to the serving contract without changing its maths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
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
CONTRACT_MARK = "slipway.contract"  # metadata_props key on graphs contract_graph made


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


def _classifier(model: Any) -> tuple[Any, list[Any]] | tuple[None, None]:
    """The first ai.onnx.ml classifier node naming its classes, and the classes in its column order."""
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings" and attr.strings:
                return node, [s.decode() for s in attr.strings]
            if attr.name == "classlabels_int64s" and attr.ints:
                return node, list(attr.ints)
    return None, None


def _answers_probabilities(model: Any, output: str) -> bool:
    """Pure; whether the output is class probabilities: a Softmax/Normalizer in the graph, a tree ensemble
    (averaged leaf probabilities) or a linear/SVM classifier with a post-transform; raw scores otherwise."""
    ops = {n.op_type for n in model.graph.node}
    producer = next((n for n in model.graph.node if output in n.output), None)
    if producer is not None and producer.op_type == "Softmax":
        return True
    node, _ = _classifier(model)
    if node is None:
        return False
    transform = next((a.s.decode() for a in node.attribute if a.name == "post_transform"), "NONE")
    if node.op_type in ("LinearClassifier", "SVMClassifier") and transform == "NONE":
        return bool(ops & {"Softmax", "Normalizer"})
    return True


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
    return GraphFacts(
        input_name=feeds[0].name,
        output_name=out.name,
        output_type=out.type.tensor_type.elem_type,
        labels=_classifier(model)[1],
        probabilities=_answers_probabilities(model, out.name),
    )


def _tensor_names(graph: Any) -> set[str]:
    names = {i.name for i in (*graph.input, *graph.output, *graph.initializer, *graph.value_info)}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _fresh(base: str, taken: set[str]) -> str:
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def _rename(graph: Any, old: str, new: str) -> None:
    """Renames a tensor everywhere it appears, subgraphs (If/Loop/Scan bodies reading outer names) included."""
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
        for attr in node.attribute:
            for sub in (attr.g, *attr.graphs) if attr.HasField("g") else attr.graphs:
                _rename(sub, old, new)
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if value.name == old:
            value.name = new


def is_contract_graph(model: Any) -> bool:
    """Pure; whether `contract_graph` made this graph (its columns are already in the project's order)."""
    return any(p.key == CONTRACT_MARK for p in model.metadata_props)


def contract_graph(
    model: Any, *, target: Target, n_features: int | None, labels: list[Any] | EllipsisType | None = ...
) -> Any:
    """Pure; a copy answering under the contract: input `input`, one output `logits` (float32, columns in
    `target.classes` order); the graph's own nodes are kept, other outputs dropped; ModelContractError if it
    cannot fit. `labels`: the classes of the model's columns (default: those its classifier node names).
    Idempotent: a graph it made comes back as it is."""
    import onnx
    from onnx import helper

    facts = graph_facts(model, n_features=n_features)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if is_contract_graph(model):
        return out
    order = class_order(facts.labels if labels is ... else labels, target=target, what="the ONNX model")
    graph = out.graph
    taken = _tensor_names(graph)
    if facts.input_name != INPUT_NAME:
        if INPUT_NAME in taken:  # another tensor holds the contract's name: it moves aside
            _rename(graph, INPUT_NAME, _fresh(INPUT_NAME, taken))
        _rename(graph, facts.input_name, INPUT_NAME)
    tail = facts.output_name
    keep = [o for o in graph.output if o.name == tail]
    shape = [d.dim_param or (d.dim_value or None) for d in keep[0].type.tensor_type.shape.dim]
    if tail != OUTPUT_NAME or order is not None or facts.output_type == DOUBLE:
        if OUTPUT_NAME in taken:
            moved = _fresh(OUTPUT_NAME, taken)
            _rename(graph, OUTPUT_NAME, moved)
            tail = moved if tail == OUTPUT_NAME else tail
        nodes = []
        if facts.output_type == DOUBLE:
            cast = _fresh("slipway_as_float", taken)
            nodes.append(helper.make_node("Cast", [tail], [cast], to=FLOAT))
            tail = cast
        if order is not None:
            indices = _fresh("slipway_class_order", taken)
            graph.initializer.append(helper.make_tensor(indices, onnx.TensorProto.INT64, [len(order)], order))
            nodes.append(helper.make_node("Gather", [tail, indices], [OUTPUT_NAME], axis=1))
        else:
            nodes.append(helper.make_node("Identity", [tail], [OUTPUT_NAME]))
        graph.node.extend(nodes)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, FLOAT, shape or None))
    if not any(o.domain in ("", "ai.onnx") for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("", 13))
    out.metadata_props.append(onnx.StringStringEntryProto(key=CONTRACT_MARK, value="1"))
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
