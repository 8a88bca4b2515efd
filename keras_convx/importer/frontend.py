"""The importer's front end: loads an untrusted ONNX model, checks it, infers shapes and
folds constant subgraphs, and hands the graph walk a small, validated graph (`read`).

Every check names the node, initializer or input it refuses. Sizes are checked before
anything is allocated: a file can claim any shape, so no tensor is materialised (from the
file, from external data or by constant folding) before its element count is known to
be within `MAX_ELEMENTS`. The steps live in their own modules: `loading` (the file and its
tensors), `shape_inference`, `folding`; the graph type in `graph`, the limits in `limits`.
"""

import collections
import json

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from keras_convx.importer.dynamic_quant import dequantize_dynamic
from keras_convx.importer.folding import fold as _fold
from keras_convx.importer.graph import Graph, Node
from keras_convx.importer.limits import MAX_DIM, MAX_ELEMENTS, MAX_FOLD_ROUNDS, elements, fail
from keras_convx.importer.loading import attr_value, check_tensor, check_versions, load
from keras_convx.importer.shape_inference import infer, reinfer, shape_of
# names the front end held before its steps moved out (`from ...frontend import X` works)
from keras_convx.importer.folding import ARITHMETIC, MOVES_ENTRIES, NOT_FOLDED  # noqa: F401
from keras_convx.importer.graph import BATCH, COMPUTED, STATIC  # noqa: F401
from keras_convx.importer.limits import MAX_FOLD_ELEMENTS  # noqa: F401

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def read(source):
    """Loads, checks, infers shapes and folds constants; returns a `Graph`.

    Raises:
        OnnxImportError: naming the node, initializer or input refused and why.
    """
    model, base_dir, path = load(source)
    opset = _opsets(model)
    check_versions(opset[""], model.ir_version)
    model, constants, dynamic = _constants(model, base_dir)
    graph_proto = model.graph
    input_names = [i.name for i in graph_proto.input if i.name not in constants]
    nodes = _nodes(graph_proto, base_dir)
    outputs = [o.name for o in graph_proto.output]
    if not outputs:
        fail("the graph has no outputs")
    nodes = _topological(nodes, set(constants) | set(input_names), outputs)
    # onnx's own checker; external data was loaded and checked above, so it sees no paths.
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        fail(f"onnx.checker: {str(err).splitlines()[0][:300]}")
    inputs = [_input(vi) for vi in graph_proto.input if vi.name not in constants]
    graph = Graph(nodes, constants, inputs, outputs, opset, infer(model, nodes, opset), path)
    graph.exported_output_perms = _exported_output_perms(model, len(outputs))
    graph.quantization = dynamic + _quantization_params(nodes, constants)
    # To a fixed point: a folded size makes the next tensor's shape static, whose Shape
    # folds in the next round (TF-style "same" pads computed from intermediate sizes).
    # (`_fold` is looked up here at each call: a test counts the rounds through it.)
    for _ in range(MAX_FOLD_ROUNDS):
        if not _fold(graph, model, graph.shapes):
            break
        graph.shapes = reinfer(graph, model)
    return graph


def _opsets(model):
    """{domain: version} of the model's opset imports ("" for ai.onnx), which must
    include the default domain."""
    opset = {}
    for imp in model.opset_import:
        opset["" if imp.domain == "ai.onnx" else imp.domain] = imp.version
    if "" not in opset:
        fail("the model imports no version of the default ONNX domain (opset_import)")
    return opset


def _constants(model, base_dir):
    """(model, {initializer name: array}, dynamic quantization parameters): every
    initializer checked before it is materialised; a dynamically quantized graph becomes
    its float graph here."""
    graph_proto = model.graph
    if graph_proto.sparse_initializer:
        fail(f"sparse initializer {graph_proto.sparse_initializer[0].values.name!r}: sparse "
             f"tensors are not supported")
    constants = {}
    for tensor in graph_proto.initializer:
        if not tensor.name:
            fail("an initializer has no name")
        constants[tensor.name] = check_tensor(tensor, base_dir)
    # a dynamically quantized graph (weights loaded above) imports as its float graph
    model, dynamic = dequantize_dynamic(model)
    if dynamic:
        constants = {t.name: constants.get(t.name) if t.name in constants
                     else numpy_helper.to_array(t) for t in model.graph.initializer}
    return model, constants, dynamic


def _nodes(graph_proto, base_dir):
    """The graph's nodes as `Node`s (unnamed ones named `<op>_<index>`), attributes
    checked and read as Python values."""
    nodes = []
    for index, proto in enumerate(graph_proto.node):
        name = proto.name or f"{proto.op_type}_{index}"
        label = f"node {name!r} ({proto.op_type})"
        attrs = {a.name: attr_value(a, label, base_dir) for a in proto.attribute}
        nodes.append(Node(name, proto.op_type, proto.domain, list(proto.input),
                          list(proto.output), attrs, extra={"proto": proto}))
    return nodes


def _topological(nodes, known, graph_outputs):
    """Nodes in dependency order; refuses undefined inputs, duplicate outputs and cycles."""
    producer = {}
    for node in nodes:
        for out in node.outputs:
            if not out:
                continue
            if out in producer or out in known:
                first = producer[out].label() if out in producer else "a graph input or initializer"
                fail(f"{node.label()}: output {out!r} is already produced by {first} (ONNX "
                     f"graphs assign each tensor once)")
            producer[out] = node
    for node in nodes:
        for name in node.inputs:
            if name and name not in producer and name not in known:
                fail(f"{node.label()}: input {name!r} is not a graph input, initializer or "
                     f"output of any node")
    for name in graph_outputs:
        if name not in producer and name not in known:
            fail(f"graph output {name!r} is not produced by any node")
    waiting = {id(n): sum(1 for i in n.inputs if i in producer) for n in nodes}
    users = {}
    for node in nodes:
        for name in node.inputs:
            if name in producer:
                users.setdefault(name, []).append(node)
    ready = collections.deque(n for n in nodes if waiting[id(n)] == 0)
    order = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for out in node.outputs:
            for user in users.get(out, []):
                waiting[id(user)] -= 1
                if waiting[id(user)] == 0:
                    ready.append(user)
    if len(order) != len(nodes):
        stuck = [n.label() for n in nodes if waiting[id(n)] > 0]
        fail(f"the graph has a cycle through {', '.join(stuck[:5])}"
             f"{' ...' if len(stuck) > 5 else ''} (ONNX graphs must be acyclic)")
    return order


def _exported_output_perms(model, count):
    """Per output, the perm keras_convx's exporter applied to the Keras tensor (None: as
    Keras had it), from the file's `keras_convx.io` metadata; None for other files."""
    props = {p.key: p.value for p in model.metadata_props}
    try:
        perms = json.loads(props["keras_convx.io"])["output_perms"]
    except (KeyError, ValueError, TypeError):
        return None
    if not isinstance(perms, list) or len(perms) != count or not all(
            p is None or isinstance(p, list) and sorted(p) == list(range(len(p)))
            for p in perms):
        return None
    return perms


def _symbolic_batch(value_info, every=False):
    """Rewrites a -1/0 batch marker (with `every`, every -1 dim) of a graph input as a
    symbolic dim, so shape inference and later passes see the dynamic axis it means."""
    dims = value_info.type.tensor_type.shape.dim
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and (d.dim_value == -1 or i == 0 and d.dim_value <= 0) \
                and (every or i == 0):
            d.dim_param = f"{value_info.name}_dynamic_{i}"


def _input(vi):
    """(name, shape) of a graph input, batch None where dynamic: float32 only, a known
    shape with a batch axis, every size within the limits. A -1 or 0 marking a dynamic
    axis is rewritten in `vi` as the symbolic axis it stands for."""
    shape = shape_of(vi)
    elem = vi.type.tensor_type.elem_type
    if elem != TensorProto.FLOAT:
        fail(f"graph input {vi.name!r}: element type "
             f"{TensorProto.DataType.Name(elem)} is not supported (float32 inputs only)")
    if shape is None or len(shape) < 1:
        fail(f"graph input {vi.name!r}: needs a known shape with a batch axis, got "
             f"{shape}")
    if any(d == -1 for d in shape[1:]):  # -1 after the batch: a dynamic axis too
        shape = shape[:1] + tuple(None if d == -1 else d for d in shape[1:])
        _symbolic_batch(vi, every=True)
    if any(d is not None and (d <= 0 or d > MAX_DIM) for d in shape[1:]):
        fail(f"graph input {vi.name!r}: shape {list(shape)} must have dimensions in "
             f"[1, {MAX_DIM}] (or symbolic) after the batch axis")
    if shape[0] is not None and shape[0] <= 0:
        # -1 or 0 where the batch goes: exporters' markers of a dynamic batch (onnxruntime
        # runs any batch there); read as the symbolic axis they stand for
        shape = (None,) + tuple(shape[1:])
        _symbolic_batch(vi)
    if shape[0] is not None and shape[0] > MAX_DIM:
        fail(f"graph input {vi.name!r}: batch dimension {shape[0]} is out of range "
             f"(at most {MAX_DIM})")
    if elements([d or 1 for d in shape[1:]]) > MAX_ELEMENTS:
        fail(f"graph input {vi.name!r}: shape {list(shape)} exceeds {MAX_ELEMENTS} "
             f"elements per sample")
    return vi.name, shape


def _quantization_params(nodes, constants):
    """Scale, zero point and axis of every QuantizeLinear/DequantizeLinear with constant
    parameters, as plain lists (before folding dequantizes the weights)."""
    params = []
    for node in nodes:
        if node.op_type not in QDQ_OPS or node.domain not in ("", "ai.onnx"):
            continue
        scale = constants.get(node.inputs[1]) if len(node.inputs) > 1 else None
        zero = constants.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        if scale is None:
            continue
        params.append({
            "node": node.name, "op": node.op_type,
            "tensor": node.inputs[0] if node.op_type == "QuantizeLinear" else node.outputs[0],
            "weight": node.inputs[0] in constants,
            "scale": np.asarray(scale, np.float64).reshape(-1).tolist(),
            "zero_point": None if zero is None else np.asarray(zero).reshape(-1).tolist(),
            "dtype": None if zero is None else str(np.asarray(zero).dtype),
            "axis": int(node.attrs.get("axis", 1)) if np.size(scale) > 1 else None})
    return params
