"""The importer's front end: loads an untrusted ONNX model, checks it, infers shapes and
folds constant subgraphs, and hands the graph walk a small, validated graph.

Every check names the node, initializer or input it refuses. Sizes are checked before
anything is allocated: a file can claim any shape, so no tensor is materialised (from the
file, from external data or by constant folding) before its element count is known to
be within `MAX_ELEMENTS`.
"""

import collections
import dataclasses
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from keras_convx.importer.errors import OnnxImportError
from keras_convx.importer.dynamic_quant import dequantize_dynamic

# Largest tensor (elements) an import materialises or accepts in a shape: 2**28 float32 is
# 1 GiB, beyond any conv net's weights or per-sample activations that the tests meet.
MAX_ELEMENTS = 2 ** 28
# Largest single dimension of an input or inferred shape.
MAX_DIM = 2 ** 24
# Largest constant folded at import (elements); bigger constant results are refused.
MAX_FOLD_ELEMENTS = 2 ** 24
# A dynamic batch size is folded as 0 and each folded integer carries a mark (see
# `Graph.batch_marks`): ops that move entries move the marks (run on the marks, with these
# inputs holding data); arithmetic on a marked entry marks the result COMPUTED.
MOVES_ENTRIES = {"Gather": (0,), "Unsqueeze": (0,), "Squeeze": (0,), "Concat": None,
                 "Slice": (0,), "Cast": (0,), "Identity": (0,), "Reshape": (0,),
                 "Flatten": (0,)}
ARITHMETIC = ("Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Floor", "Ceil", "Max", "Min",
              "Sqrt", "Pow", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
              "Where", "Not", "And", "Or", "Sign", "Round")
STATIC, BATCH, COMPUTED = 0, 1, 2
# Rounds of folding and shape inference before giving up on a fixed point.
MAX_FOLD_ROUNDS = 64
# Ops never folded: not deterministic.
NOT_FOLDED = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
              "Multinomial", "Bernoulli")
_ITEMSIZE = {TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2,
             TensorProto.BFLOAT16: 2, TensorProto.INT64: 8, TensorProto.INT32: 4,
             TensorProto.INT16: 2, TensorProto.INT8: 1, TensorProto.UINT8: 1,
             TensorProto.UINT16: 2, TensorProto.UINT32: 4, TensorProto.UINT64: 8,
             TensorProto.BOOL: 1}
# The typed repeated field holding each data type when raw_data is absent.
_FIELD = {TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data",
          TensorProto.INT64: "int64_data", TensorProto.UINT64: "uint64_data",
          TensorProto.INT32: "int32_data", TensorProto.INT16: "int32_data",
          TensorProto.INT8: "int32_data", TensorProto.UINT8: "int32_data",
          TensorProto.UINT16: "int32_data", TensorProto.BOOL: "int32_data",
          TensorProto.FLOAT16: "int32_data", TensorProto.BFLOAT16: "int32_data",
          TensorProto.UINT32: "uint64_data"}


@dataclasses.dataclass
class Node:
    """One ONNX node (or a group fused by a pass): attributes as Python values."""

    name: str
    op_type: str
    domain: str
    inputs: list
    outputs: list
    attrs: dict
    fused: list = dataclasses.field(default_factory=list)  # names of nodes folded in
    extra: dict = dataclasses.field(default_factory=dict)  # what a fusion pass hands over

    def label(self):
        return f"node {self.name!r} ({self.op_type})"


@dataclasses.dataclass
class Graph:
    nodes: list
    constants: dict  # tensor name -> np.ndarray (initializers and folded values)
    inputs: list  # (name, shape with None for a dynamic batch, dtype)
    outputs: list
    opset: dict  # domain -> version
    shapes: dict  # tensor name -> inferred shape (None where unknown)
    path: str = None
    # folded values computed from a dynamic batch size (Shape holds 0 for it): tensor ->
    # int array of its shape, per entry STATIC, BATCH (exactly the batch size) or COMPUTED
    # (a function of it). Only entries marked BATCH in first place are accepted, where a
    # conversion can keep the batch symbolic (a Reshape's target, an Expand's shape).
    batch_marks: dict = dataclasses.field(default_factory=dict)
    # the layouts keras_convx's exporter moved each output to (its `keras_convx.io`
    # metadata): a file of ours imports back to the Keras model's own signature
    exported_output_perms: list = None
    # QuantizeLinear/DequantizeLinear of the file (a QDQ graph): the import is float
    # (weights dequantized exactly, activation pairs removed); their parameters are kept
    quantization: list = dataclasses.field(default_factory=list)

    def batch_dependent(self, name):
        """Whether any entry of the folded value `name` depends on the batch size."""
        marks = self.batch_marks.get(name)
        return marks is not None and bool(np.any(marks))

    def batch_first_only(self, name):
        """Whether `name`'s only batch-dependent entry is its first, exactly the batch."""
        marks = np.asarray(self.batch_marks.get(name, np.zeros(1, np.int8))).reshape(-1)
        return marks.size > 0 and marks[0] in (STATIC, BATCH) and not np.any(marks[1:])

    def consumers(self, name):
        return [n for n in self.nodes if name in n.inputs]


def _fail(message):
    raise OnnxImportError(f"import_onnx: {message}")


def _elements(dims):
    total = 1
    for d in dims:
        total *= int(d)
    return total


def _tensor_label(tensor, where):
    return f"{where} {tensor.name!r}"


def _check_external(tensor, base_dir, where):
    """Refuses external data outside the model's folder (path traversal), missing files
    and ranges past the end of the file; then loads it."""
    label = _tensor_label(tensor, where)
    if base_dir is None:
        _fail(f"{label} keeps its data in an external file: pass the model's path (not a "
              f"ModelProto or bytes) so the file can be found next to it")
    info = onnx.external_data_helper.ExternalDataInfo(tensor)
    location = info.location or ""
    base = os.path.realpath(base_dir)
    target = os.path.realpath(os.path.join(base, location))
    if (not location or os.path.isabs(location) or ".." in location.replace("\\", "/").split("/")
            or os.path.commonpath([base, target]) != base):
        _fail(f"{label}: external data location {location!r} is outside the model's folder "
              f"{base_dir} (only relative paths inside it are accepted)")
    if not os.path.isfile(target):
        _fail(f"{label}: external data file {location!r} does not exist in {base_dir}")
    size = os.path.getsize(target)
    offset = info.offset or 0
    expected = _elements(tensor.dims) * _ITEMSIZE.get(tensor.data_type, 0)
    length = info.length if info.length is not None else size - offset
    if offset < 0 or offset + length > size or length != expected:
        _fail(f"{label}: external data range offset={offset}, length={length} does not hold "
              f"{expected} bytes of shape {list(tensor.dims)} in {location!r} ({size} bytes)")
    onnx.external_data_helper.load_external_data_for_tensor(tensor, base_dir)
    tensor.data_location = TensorProto.DEFAULT
    del tensor.external_data[:]


def check_tensor(tensor, base_dir, where="initializer"):
    """Checks a TensorProto's claimed shape against its data before materialising it."""
    label = _tensor_label(tensor, where)
    if tensor.data_type not in _ITEMSIZE:
        _fail(f"{label}: data type {TensorProto.DataType.Name(tensor.data_type)} is not "
              f"supported (numeric types only)")
    if any(d < 0 for d in tensor.dims):
        _fail(f"{label}: negative dimension in shape {list(tensor.dims)}")
    count = _elements(tensor.dims)
    if count > MAX_ELEMENTS:
        _fail(f"{label}: shape {list(tensor.dims)} has {count} elements, more than the "
              f"{MAX_ELEMENTS} accepted")
    if tensor.data_location == TensorProto.EXTERNAL:
        _check_external(tensor, base_dir, where)
    if tensor.HasField("raw_data") or tensor.raw_data:
        have, want = len(tensor.raw_data), count * _ITEMSIZE[tensor.data_type]
    else:
        have, want = len(getattr(tensor, _FIELD[tensor.data_type])), count
    if have != want:
        _fail(f"{label}: shape {list(tensor.dims)} needs {want} "
              f"{'bytes' if tensor.raw_data else 'values'}, the data holds {have}")
    return numpy_helper.to_array(tensor)


def _attr_value(attr, node_label, base_dir):
    if attr.type == onnx.AttributeProto.TENSOR:
        return check_tensor(attr.t, base_dir, f"{node_label} attribute {attr.name!r}")
    if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return attr  # subgraphs: the op (If, Loop, Scan) has no conversion
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def load(source):
    """A ModelProto and its folder from a path, bytes or ModelProto; external data is
    loaded only after `check_tensor` accepted its location and range."""
    if isinstance(source, onnx.ModelProto):
        return source, None, None
    if isinstance(source, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(source)), None, None
        except Exception as err:
            _fail(f"not a valid ONNX model ({type(err).__name__}: {err})")
    path = os.fspath(source)
    if not os.path.isfile(path):
        _fail(f"{path}: no such file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as err:
        _fail(f"{path}: not a valid ONNX file ({type(err).__name__}: {str(err)[:200]})")
    return model, os.path.dirname(os.path.abspath(path)), path


def _topological(nodes, known, graph_outputs):
    """Nodes in dependency order; refuses undefined inputs, duplicate outputs and cycles."""
    producer = {}
    for node in nodes:
        for out in node.outputs:
            if not out:
                continue
            if out in producer or out in known:
                first = producer[out].label() if out in producer else "a graph input or initializer"
                _fail(f"{node.label()}: output {out!r} is already produced by {first} (ONNX "
                      f"graphs assign each tensor once)")
            producer[out] = node
    for node in nodes:
        for name in node.inputs:
            if name and name not in producer and name not in known:
                _fail(f"{node.label()}: input {name!r} is not a graph input, initializer or "
                      f"output of any node")
    for name in graph_outputs:
        if name not in producer and name not in known:
            _fail(f"graph output {name!r} is not produced by any node")
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
        _fail(f"the graph has a cycle through {', '.join(stuck[:5])}"
              f"{' ...' if len(stuck) > 5 else ''} (ONNX graphs must be acyclic)")
    return order


def _exported_output_perms(model, count):
    """Per output, the perm keras_convx's exporter applied to the Keras tensor (None: as
    Keras had it), from the file's `keras_convx.io` metadata; None for other files."""
    import json

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


def _shape_of(value_info):
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None
                 for d in t.tensor_type.shape.dim)


def _fold_guard(node, values):
    """Element count of a value-dependent allocation, computed before running the node."""
    try:
        if node.op_type == "ConstantOfShape":
            return _elements(values[0])
        if node.op_type == "Expand":
            return _elements(np.broadcast_shapes(values[0].shape, tuple(int(v) for v in values[1])))
        if node.op_type == "Tile":
            return _elements(np.asarray(values[0].shape) * np.asarray(values[1]))
        if node.op_type == "Range":
            start, limit, delta = (float(v) for v in values[:3])
            return max(int(np.ceil((limit - start) / delta)), 0) if delta else MAX_FOLD_ELEMENTS + 1
    except (ValueError, TypeError, OverflowError, IndexError):
        shapes = [getattr(v, "shape", v) for v in values]
        _fail(f"{node.label()}: inconsistent constant inputs {shapes}")
    return max([int(np.size(v)) for v in values] + [0])


def _dequantize(node, feeds):
    """DequantizeLinear of constants as onnxruntime computes it, `float(q - zero_point) *
    scale` in float32 (onnx's reference evaluator has it from opset 19 only)."""
    q = np.asarray(feeds[node.inputs[0]])
    scale = np.asarray(feeds[node.inputs[1]])
    zero = np.asarray(feeds[node.inputs[2]]) if len(node.inputs) > 2 and node.inputs[2] else \
        np.zeros((), q.dtype)
    if scale.ndim == 1 and scale.size > 1:  # per axis
        axis = int(node.attrs.get("axis", 1)) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    elif scale.ndim > 1 or int(node.attrs.get("block_size", 0)):
        raise ValueError("blocked quantization is not folded")
    diff = q.astype(np.int64) - zero.astype(np.int64)
    return [(diff.astype(np.float32) * scale.astype(np.float32)).astype(scale.dtype)]


def _run_single(node, model, feeds):
    """One node through onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    if node.op_type == "DequantizeLinear" and node.inputs[0] in feeds:
        return _dequantize(node, feeds)

    proto = node.extra["proto"]
    single = helper.make_model(
        helper.make_graph([proto], "fold",
                          [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(
                              v.dtype), v.shape) for i, v in feeds.items()],
                          [helper.make_value_info(o, onnx.TypeProto()) for o in node.outputs
                           if o]),
        opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return ReferenceEvaluator(single).run(None, feeds)


def _marks(graph, node, model, values):
    """The batch marks of a foldable node's outputs, or None when it can't be folded
    without losing track of the batch (the node is then kept)."""
    marks = [graph.batch_marks.get(i) if i else None for i in node.inputs]
    if not any(m is not None and np.any(m) for m in marks):
        return []
    if node.op_type in ARITHMETIC:
        shapes = [np.shape(v) for v in values]
        try:
            out = np.zeros(np.broadcast_shapes(*shapes), np.int8)
        except ValueError:
            return None
        for m in marks:
            if m is not None:
                out = np.maximum(out, np.where(np.broadcast_to(m, out.shape) > 0, COMPUTED,
                                               STATIC).astype(np.int8))
        return [out] * len([o for o in node.outputs if o])
    if node.op_type not in MOVES_ENTRIES:
        return None
    data = MOVES_ENTRIES[node.op_type] or range(len(node.inputs))
    if any(m is not None and np.any(m) for i, m in enumerate(marks) if i not in data):
        return None  # indices, starts, axes... computed from the batch
    feeds = {}
    for i, name in enumerate(node.inputs):
        if not name:
            continue
        if i in data:
            m = marks[i] if marks[i] is not None else np.zeros(np.shape(graph.constants[name]))
            feeds[name] = np.asarray(m, np.int64).reshape(np.shape(graph.constants[name]))
        else:
            feeds[name] = graph.constants[name]
    if node.op_type == "Cast":
        return [np.asarray(feeds[node.inputs[0]], np.int8)]
    try:
        return [np.asarray(r).astype(np.int8) for r in _run_single(node, model, feeds)]
    except Exception:
        return None


def _fold_shape(graph, node, shapes):
    """Shape of a tensor whose non-batch dims are static -> a constant (0 and a BATCH mark
    for a dynamic batch); True when folded."""
    shape = shapes.get(node.inputs[0])
    if shape is None or None in shape[1:] or set(node.attrs) - {"start", "end"}:
        return False
    value = np.asarray([0 if d is None else d for d in shape], np.int64)
    marks = np.asarray([BATCH if d is None else STATIC for d in shape], np.int8)
    n = len(shape)
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    start = min(max(start + n if start < 0 else start, 0), n)
    end = n if end is None else min(max(int(end) + n if int(end) < 0 else int(end), 0), n)
    graph.constants[node.outputs[0]] = value[start:end]
    if np.any(marks[start:end]):
        graph.batch_marks[node.outputs[0]] = marks[start:end]
    return True


def _fold(graph, model, shapes):
    """Evaluates nodes whose inputs are all constant (and Shape of tensors whose shape is
    static after the batch) with onnx's reference evaluator, one node at a time; sizes
    are checked first. Returns whether anything was folded."""
    kept = []
    for node in graph.nodes:
        if (node.op_type == "Shape" and node.domain in ("", "ai.onnx")
                and len(node.inputs) == 1 and _fold_shape(graph, node, shapes)):
            continue
        if (node.domain not in ("", "ai.onnx") or node.op_type in NOT_FOLDED
                or any(isinstance(v, onnx.AttributeProto) for v in node.attrs.values())
                or not all(i == "" or i in graph.constants for i in node.inputs)):
            kept.append(node)
            continue
        values = [graph.constants[i] for i in node.inputs if i]
        marks = _marks(graph, node, model, values)
        if marks is None:
            kept.append(node)
            continue
        count = _fold_guard(node, values)
        for out in node.outputs:
            shape = shapes.get(out)
            if shape is not None and None not in shape:
                count = max(count, _elements(shape))
        if count > MAX_FOLD_ELEMENTS:
            _fail(f"{node.label()}: constant result of {count} elements exceeds the "
                  f"{MAX_FOLD_ELEMENTS} folded at import")
        feeds = {i: graph.constants[i] for i in node.inputs if i}
        try:
            results = _run_single(node, model, feeds)
        except Exception as err:
            _fail(f"{node.label()}: constant folding failed ({type(err).__name__}: "
                  f"{str(err).splitlines()[0][:200] if str(err) else ''})")
        for i, (out, value) in enumerate(zip([o for o in node.outputs if o], results)):
            value = np.asarray(value)
            if value.size > MAX_FOLD_ELEMENTS:
                _fail(f"{node.label()}: constant result of {value.size} elements exceeds the "
                      f"{MAX_FOLD_ELEMENTS} folded at import")
            graph.constants[out] = value
            if i < len(marks) and np.any(marks[i]):
                graph.batch_marks[out] = np.broadcast_to(marks[i], value.shape).copy()
    changed = len(kept) != len(graph.nodes)
    graph.nodes = kept
    return changed


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


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


def _check_versions(opset, ir_version):
    """Refuses an opset or IR version that onnx and the installed onnxruntime don't both
    support (verification runs the file in onnxruntime), naming the fix."""
    from keras_convx.utils.runtime import supported_range

    oldest, newest, newest_ir = supported_range()
    if opset < oldest:
        _fail(f"opset {opset} of the default domain is older than the supported range "
              f"{oldest}..{newest}: convert it with onnx.version_converter.convert_version("
              f"model, {oldest}) or re-export at opset >= {oldest}")
    if opset > newest or ir_version > newest_ir:
        _fail(f"opset {opset} at IR version {ir_version} is newer than the installed "
              f"onnxruntime loads (opsets {oldest}..{newest}, IR version <= {newest_ir}): "
              f"convert it with onnx.version_converter.convert_version(model, {newest}) and "
              f"set model.ir_version = {newest_ir}, or re-export at opset <= {newest} (onnx's "
              f"helper.make_model writes its newest opset and IR version unless told)")


def read(source):
    """Loads, checks, infers shapes and folds constants; returns a `Graph`.

    Raises:
        OnnxImportError: naming the node, initializer or input refused and why.
    """
    model, base_dir, path = load(source)
    graph_proto = model.graph
    opset = {}
    for imp in model.opset_import:
        opset["" if imp.domain == "ai.onnx" else imp.domain] = imp.version
    if "" not in opset:
        _fail("the model imports no version of the default ONNX domain (opset_import)")
    _check_versions(opset[""], model.ir_version)
    if graph_proto.sparse_initializer:
        _fail(f"sparse initializer {graph_proto.sparse_initializer[0].values.name!r}: sparse "
              f"tensors are not supported")
    constants = {}
    for tensor in graph_proto.initializer:
        if not tensor.name:
            _fail("an initializer has no name")
        constants[tensor.name] = check_tensor(tensor, base_dir)
    # a dynamically quantized graph (weights loaded above) imports as its float graph
    model, dynamic = dequantize_dynamic(model)
    if dynamic:
        graph_proto = model.graph
        constants = {t.name: constants.get(t.name) if t.name in constants
                     else numpy_helper.to_array(t) for t in graph_proto.initializer}
    input_names = [i.name for i in graph_proto.input if i.name not in constants]
    nodes = []
    for index, proto in enumerate(graph_proto.node):
        name = proto.name or f"{proto.op_type}_{index}"
        label = f"node {name!r} ({proto.op_type})"
        attrs = {a.name: _attr_value(a, label, base_dir) for a in proto.attribute}
        nodes.append(Node(name, proto.op_type, proto.domain, list(proto.input),
                          list(proto.output), attrs, extra={"proto": proto}))
    outputs = [o.name for o in graph_proto.output]
    if not outputs:
        _fail("the graph has no outputs")
    nodes = _topological(nodes, set(constants) | set(input_names), outputs)
    # onnx's own checker; external data was loaded and checked above, so it sees no paths.
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        _fail(f"onnx.checker: {str(err).splitlines()[0][:300]}")
    inputs = []
    for vi in graph_proto.input:
        if vi.name in constants:
            continue
        shape = _shape_of(vi)
        elem = vi.type.tensor_type.elem_type
        if elem != TensorProto.FLOAT:
            _fail(f"graph input {vi.name!r}: element type "
                  f"{TensorProto.DataType.Name(elem)} is not supported (float32 inputs only)")
        if shape is None or len(shape) < 1:
            _fail(f"graph input {vi.name!r}: needs a known shape with a batch axis, got "
                  f"{shape}")
        if any(d == -1 for d in shape[1:]):  # -1 after the batch: a dynamic axis too
            shape = shape[:1] + tuple(None if d == -1 else d for d in shape[1:])
            _symbolic_batch(vi, every=True)
        if any(d is not None and (d <= 0 or d > MAX_DIM) for d in shape[1:]):
            _fail(f"graph input {vi.name!r}: shape {list(shape)} must have dimensions in "
                  f"[1, {MAX_DIM}] (or symbolic) after the batch axis")
        if shape[0] is not None and shape[0] <= 0:
            # -1 or 0 where the batch goes: exporters' markers of a dynamic batch (onnxruntime
            # runs any batch there); read as the symbolic axis they stand for
            shape = (None,) + tuple(shape[1:])
            _symbolic_batch(vi)
        if shape[0] is not None and shape[0] > MAX_DIM:
            _fail(f"graph input {vi.name!r}: batch dimension {shape[0]} is out of range "
                  f"(at most {MAX_DIM})")
        if _elements([d or 1 for d in shape[1:]]) > MAX_ELEMENTS:
            _fail(f"graph input {vi.name!r}: shape {list(shape)} exceeds {MAX_ELEMENTS} "
                  f"elements per sample")
        inputs.append((vi.name, shape))
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                      data_prop=True)
    except Exception as err:
        _shape_inference_failed(model, nodes, opset, err)
    shapes = {vi.name: _shape_of(vi) for vi in list(inferred.graph.value_info)
              + list(inferred.graph.output) + list(inferred.graph.input)}
    _check_shapes(shapes, nodes)
    graph = Graph(nodes, constants, inputs, outputs, opset, shapes, path)
    graph.exported_output_perms = _exported_output_perms(model, len(outputs))
    graph.quantization = dynamic + _quantization_params(nodes, constants)
    # To a fixed point: a folded size makes the next tensor's shape static, whose Shape
    # folds in the next round (TF-style "same" pads computed from intermediate sizes).
    for _ in range(MAX_FOLD_ROUNDS):
        if not _fold(graph, model, graph.shapes):
            break
        graph.shapes = _reinfer(graph, model)
    return graph


# Ops the front end folds away when their inputs are known (no conversion needed)
_FOLDED_ONLY = ("Shape", "Size", "ConstantOfShape", "Range", "Constant")


def _shape_inference_failed(model, nodes, opset, err, what="shape inference"):
    """Names the first real cause of a shape-inference clash: ops without a conversion
    (an LSTM) come first, then a graph output declared with a shape the graph does not
    compute (shape inference reports either at some node downstream)."""
    from keras_convx.importer import registry
    from keras_convx.importer.errors import UnsupportedOps

    clash = str(err).splitlines()[0][:300]
    missing = [(n.name, n.op_type, f"no conversion for {n.domain or 'ai.onnx'} {n.op_type} at "
                f"opset {opset.get(n.domain if n.domain != 'ai.onnx' else '', 1)}")
               for n in nodes if n.op_type not in _FOLDED_ONLY and registry.find(
                   n.domain, n.op_type, opset.get(n.domain if n.domain != "ai.onnx" else "", 1))
               is None]
    if missing:
        raise UnsupportedOps(missing + [("(shape inference)", "-", f"then fails: {clash}")])
    loose = onnx.ModelProto()
    loose.CopyFrom(model)
    for out in loose.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(loose, check_type=True, strict_mode=True,
                                                      data_prop=True)
    except Exception:
        _fail(f"{what}: {clash}")
    computed = {o.name: _shape_of(o) for o in inferred.graph.output}
    for out in model.graph.output:
        declared, got = _shape_of(out), computed.get(out.name)
        if declared is not None and got is not None and len(declared) != len(got):
            _fail(f"graph output {out.name!r} is declared with shape "
                  f"{[d if d is not None else '?' for d in declared]} (rank {len(declared)}), "
                  f"but the graph computes rank {len(got)}: the file's declared output shape "
                  f"is wrong (fix it in the file's graph.output)")
    _fail(f"{what}: {clash}")


# (op, input index) -> what a batch-size entry of a folded shape reads as in re-inference
_BATCH_STAND_IN = {("Reshape", 1): 0, ("Expand", 1): 1}


def _reinfer(graph, model):
    """Shape inference again with folded values as initializers: shapes that depended on
    a computed pads/shape/scales input become static."""
    used = {i for n in graph.nodes for i in n.inputs if i in graph.constants}
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    del folded.graph.node[:]
    # A value computed from the dynamic batch (0 stands for it) is no number shape
    # inference may read as it is: a Reshape's target keeps 0 first (copy the batch), an
    # Expand's shape gets 1 there (broadcast keeps the batch), anything else reads it as
    # an input of unknown value.
    marked = {name for name in used if graph.batch_dependent(name)}
    extra = {}
    for node in graph.nodes:
        proto = onnx.NodeProto()
        proto.CopyFrom(node.extra["proto"])
        for i, name in enumerate(proto.input):
            stand_in = _BATCH_STAND_IN.get((node.op_type, i))
            if name in marked and stand_in is not None and graph.batch_first_only(name):
                value = np.array(graph.constants[name]).reshape(-1)
                value[0] = stand_in
                proto.input[i] = f"{name}__{node.op_type}"
                extra[proto.input[i]] = value
        folded.graph.node.append(proto)
    del folded.graph.initializer[:]
    del folded.graph.value_info[:]
    folded.graph.initializer.extend(numpy_helper.from_array(graph.constants[name], name)
                                    for name in sorted(used - marked))
    folded.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in extra.items())
    kept = [vi for vi in folded.graph.input if vi.name not in graph.constants or vi.name in used]
    del folded.graph.input[:]
    folded.graph.input.extend(kept)
    folded.graph.input.extend(
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(
            graph.constants[name].dtype), graph.constants[name].shape)
        for name in sorted(marked) if name not in {vi.name for vi in kept})
    try:
        inferred = onnx.shape_inference.infer_shapes(folded, check_type=True, strict_mode=True,
                                                      data_prop=True)
    except Exception as err:
        _shape_inference_failed(folded, graph.nodes, graph.opset, err,
                                "shape inference after constant folding")
    shapes = dict(graph.shapes)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        shape = _shape_of(vi)
        if shape is not None:
            shapes[vi.name] = shape
    _check_shapes(shapes, graph.nodes)
    return shapes


def _check_shapes(shapes, nodes):
    """Refuses inferred shapes beyond MAX_DIM per axis or MAX_ELEMENTS in all, naming the
    node producing them."""
    produced_by = {o: n for n in nodes for o in n.outputs}
    for name, shape in shapes.items():
        if shape is not None and (any(d is not None and d > MAX_DIM for d in shape)
                                  or _elements([d or 1 for d in shape]) > MAX_ELEMENTS):
            node = produced_by.get(name)
            _fail(f"{node.label() if node else repr(name)}: inferred shape {list(shape)} of "
                  f"{name!r} exceeds the accepted size ({MAX_DIM} per axis, {MAX_ELEMENTS} "
                  f"elements)")
