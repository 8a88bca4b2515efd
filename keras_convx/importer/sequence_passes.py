"""Fusion passes for sequence models (after `passes`): a Linear on a sequence folded
into rows becomes a Dense over the unfolded tensor, and zero initial states computed from
the batch size are dropped (ONNX LSTM/GRU start from zeros without them)."""

import numpy as np

from keras_convx.importer.graph import Node
from keras_convx.importer.layout_inference import SEQUENCE_OPS
from keras_convx.importer.passes import ONNX, _single_user, remove_dead_nodes
from keras_convx.importer.registry import FUSED_DOMAIN

_INITIAL_STATES = {"LSTM": (5, 6), "GRU": (5,)}
_KEEP_ZEROS = ("Slice", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Expand", "Cast")


def _static_target(graph, reshape, size):
    """The Reshape's constant target (one -1 resolved against `size` elements), or None
    when it is computed, depends on the batch or does not fit."""
    name = reshape.inputs[1] if len(reshape.inputs) > 1 else ""
    target = graph.constants.get(name)
    if target is None or graph.batch_dependent(name) or reshape.attrs.get("allowzero"):
        return None
    target = [int(t) for t in np.asarray(target).reshape(-1)]
    if 0 in target or target.count(-1) > 1 or any(t < -1 for t in target):
        return None
    if -1 in target:
        known = int(np.prod([t for t in target if t != -1]))
        if not known or size % known:
            return None
        target[target.index(-1)] = size // known
    return target if int(np.prod(target)) == size else None


def _row_weights(graph, node):
    """(kernel, bias or None) of a Gemm/MatMul/fused Dense applied to each row, with
    constant weights; None otherwise."""
    w = graph.constants.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if w is None or w.ndim != 2:
        return None
    c = graph.constants.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if node.op_type == "Gemm" and node.domain in ONNX and not node.attrs.get("transA"):
        w = (w.T if node.attrs.get("transB") else w) * np.float32(node.attrs.get("alpha", 1.0))
        c = None if c is None else c * np.float32(node.attrs.get("beta", 1.0))
    elif not (node.op_type == "MatMul" and node.domain in ONNX and len(node.inputs) == 2
              or node.op_type == "Dense" and node.domain == FUSED_DOMAIN):
        return None
    if c is not None and (c.size != w.shape[1] or c.shape[-1] != w.shape[1]):
        return None  # a bias per row
    return np.asarray(w, np.float32), None if c is None else np.asarray(c, np.float32).reshape(-1)


def fuse_folded_dense(graph):
    """Reshape (a, b, ..., k) -> (a*b*..., k) -> Gemm/MatMul -> Reshape (a, b, ..., n): a
    Linear applied to every row of a folded sequence (crnn.pytorch's `fc(r.view(T*b, h))
    .view(T, b, -1)`) is a Dense over the last axis of the unfolded tensor, the batch
    wherever it is: one `FoldedDense` node, and no reshape folds the batch into the rows.
    Static shapes only."""
    for fold in list(graph.nodes):
        if fold.op_type != "Reshape" or fold.domain not in ONNX or len(fold.inputs) != 2:
            continue
        shape = graph.shapes.get(fold.inputs[0])
        if shape is None or len(shape) < 3 or None in shape or fold.inputs[0] in graph.constants:
            continue
        size = int(np.prod(shape))
        if _static_target(graph, fold, size) != [size // shape[-1], shape[-1]]:
            continue
        rows = _single_user(graph, fold.outputs[0])
        weights = _row_weights(graph, rows) if rows is not None and \
            rows.inputs[0] == fold.outputs[0] else None
        if weights is None or weights[0].shape[0] != shape[-1]:
            continue
        unfold = _single_user(graph, rows.outputs[0])
        n = weights[0].shape[1]
        if unfold is None or unfold.op_type != "Reshape" or unfold.domain not in ONNX or \
                _static_target(graph, unfold, size // shape[-1] * n) != list(shape[:-1]) + [n]:
            continue
        kernel, bias = f"{rows.name}_kernel", f"{rows.name}_bias"
        graph.constants[kernel] = weights[0]
        if weights[1] is not None:
            graph.constants[bias] = weights[1]
        fused = Node(rows.name, "FoldedDense", FUSED_DOMAIN,
                     [fold.inputs[0], kernel] + ([bias] if weights[1] is not None else []),
                     list(unfold.outputs), {}, fused=[fold.name, *rows.fused, unfold.name])
        graph.nodes[graph.nodes.index(unfold)] = fused
        graph.nodes.remove(fold)
        graph.nodes.remove(rows)


def _made_of_zeros(producers, name):
    """Whether `name` comes from a ConstantOfShape of zeros through ops that keep zeros
    zero."""
    node = producers.get(name)
    while node is not None and node.domain in ONNX:
        if node.op_type == "ConstantOfShape":
            value = node.attrs.get("value")
            return value is None or not np.any(np.asarray(value) != 0)
        if node.op_type not in _KEEP_ZEROS or not node.inputs:
            return False
        node = producers.get(node.inputs[0])
    return False


def drop_zero_initial_states(graph):
    """An LSTM/GRU initial state of zeros made by ConstantOfShape (and sliced per layer:
    PyTorch's export when no state is passed, its shape from the dynamic batch size) is
    the default: the input is dropped, and the nodes that made it go with the dead
    nodes (`remove_dead_nodes`)."""
    producers = {o: n for n in graph.nodes for o in n.outputs}
    for node in graph.nodes:
        if node.op_type not in SEQUENCE_OPS or node.domain not in ONNX:
            continue
        for index in _INITIAL_STATES[node.op_type]:
            name = node.inputs[index] if index < len(node.inputs) else ""
            if name and _made_of_zeros(producers, name):
                node.inputs[index] = ""


PASSES = (fuse_folded_dense, drop_zero_initial_states, remove_dead_nodes)


def run(graph):
    for fuse in PASSES:
        fuse(graph)
    return graph
