"""Constant folding at import: nodes whose inputs are all known are run once, one at a
time, in onnx's reference evaluator (sizes checked first), and Shape of a tensor whose
shape is static after the batch becomes a constant. A dynamic batch size folds as 0,
each folded integer carrying a mark of whether it stands for the batch."""

import numpy as np
import onnx
from onnx import helper

from keras_convx.importer.graph import BATCH, COMPUTED, STATIC
from keras_convx.importer.limits import MAX_FOLD_ELEMENTS, elements, fail

# Ops that move entries move the batch marks (run on the marks, with these inputs holding
# data); arithmetic on a marked entry marks the result COMPUTED.
MOVES_ENTRIES = {"Gather": (0,), "Unsqueeze": (0,), "Squeeze": (0,), "Concat": None,
                 "Slice": (0,), "Cast": (0,), "Identity": (0,), "Reshape": (0,),
                 "Flatten": (0,)}
ARITHMETIC = ("Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Floor", "Ceil", "Max", "Min",
              "Sqrt", "Pow", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
              "Where", "Not", "And", "Or", "Sign", "Round")
# Ops never folded: not deterministic.
NOT_FOLDED = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
              "Multinomial", "Bernoulli")


def _fold_guard(node, values):
    """Element count of a value-dependent allocation, computed before running the node."""
    try:
        if node.op_type == "ConstantOfShape":
            return elements(values[0])
        if node.op_type == "Expand":
            return elements(np.broadcast_shapes(values[0].shape, tuple(int(v) for v in values[1])))
        if node.op_type == "Tile":
            return elements(np.asarray(values[0].shape) * np.asarray(values[1]))
        if node.op_type == "Range":
            start, limit, delta = (float(v) for v in values[:3])
            return max(int(np.ceil((limit - start) / delta)), 0) if delta else MAX_FOLD_ELEMENTS + 1
    except (ValueError, TypeError, OverflowError, IndexError):
        shapes = [getattr(v, "shape", v) for v in values]
        fail(f"{node.label()}: inconsistent constant inputs {shapes}")
    return max([int(np.size(v)) for v in values] + [0])


def dequantize(node, feeds):
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
        return dequantize(node, feeds)

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


def fold(graph, model, shapes):
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
                count = max(count, elements(shape))
        if count > MAX_FOLD_ELEMENTS:
            fail(f"{node.label()}: constant result of {count} elements exceeds the "
                 f"{MAX_FOLD_ELEMENTS} folded at import")
        feeds = {i: graph.constants[i] for i in node.inputs if i}
        try:
            results = _run_single(node, model, feeds)
        except Exception as err:
            fail(f"{node.label()}: constant folding failed ({type(err).__name__}: "
                 f"{str(err).splitlines()[0][:200] if str(err) else ''})")
        for i, (out, value) in enumerate(zip([o for o in node.outputs if o], results)):
            value = np.asarray(value)
            if value.size > MAX_FOLD_ELEMENTS:
                fail(f"{node.label()}: constant result of {value.size} elements exceeds the "
                     f"{MAX_FOLD_ELEMENTS} folded at import")
            graph.constants[out] = value
            if i < len(marks) and np.any(marks[i]):
                graph.batch_marks[out] = np.broadcast_to(marks[i], value.shape).copy()
    changed = len(kept) != len(graph.nodes)
    graph.nodes = kept
    return changed
