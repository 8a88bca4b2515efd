"""Named faults injected into exported ONNX graphs, to prove verification catches them.

Each mutation edits a copy of the graph in place and returns the Keras layer it corrupted
(diagnosis must name it, or the layer right after when its tensor was fused away), or
None when the graph has nothing it applies to. Targets are picked deterministically:
the middle one of the candidate nodes in graph order.
"""

import numpy as np
import onnx
from onnx import numpy_helper

from keras_convx.exporter.passes import _attr, _set_attr  # reading/writing node attributes


def _inits(model):
    return {t.name: t for t in model.graph.initializer}


def _get(model, name):
    return numpy_helper.to_array(_inits(model)[name])


def _put(model, name, array):
    _inits(model)[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), name))


def _middle(nodes):
    return nodes[len(nodes) // 2] if nodes else None


def _layer(node):
    return node.name.split("/")[0]


def _convs(model, pred=lambda node, w: True):
    inits = _inits(model)
    out = []
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
            if pred(node, numpy_helper.to_array(inits[node.input[1]])):
                out.append(node)
    return out


def scale_weight(factor):
    def mutate(model, ctx):
        node = _middle(_convs(model))
        if node is None:
            return None
        _put(model, node.input[1], _get(model, node.input[1]) * np.float32(factor))
        return _layer(node)
    return mutate


def _permute_out(model, node, order):
    _put(model, node.input[1], _get(model, node.input[1])[order])
    if len(node.input) > 2 and node.input[2]:
        _put(model, node.input[2], _get(model, node.input[2])[order])


def swap_out_channels(model, ctx):
    node = _middle(_convs(model, lambda n, w: w.shape[0] >= 2 and _attr(n, "group", 1) == 1))
    if node is None:
        return None
    n = _get(model, node.input[1]).shape[0]
    order = np.arange(n)
    order[[0, 1]] = [1, 0]
    _permute_out(model, node, order)
    return _layer(node)


def swap_channel_halves(model, ctx):
    node = _middle(_convs(model, lambda n, w: w.shape[0] >= 2 and _attr(n, "group", 1) == 1))
    if node is None:
        return None
    n = _get(model, node.input[1]).shape[0]
    _permute_out(model, node, np.roll(np.arange(n), n // 2))
    return _layer(node)


def flip_kernel(model, ctx):
    node = _middle(_convs(model, lambda n, w: max(w.shape[2:]) > 1))
    if node is None:
        return None
    w = _get(model, node.input[1])
    _put(model, node.input[1], np.flip(w, axis=tuple(range(2, w.ndim))))
    return _layer(node)


def move_pad_side(model, ctx):
    def padded(node, w):
        pads = _attr(node, "pads", [])
        return any(p > 0 for p in pads[: len(pads) // 2])
    node = _middle(_convs(model, padded))
    if node is None:
        return None
    pads = list(_attr(node, "pads"))
    half = len(pads) // 2
    axis = next(i for i in range(half) if pads[i] > 0)
    pads[axis] -= 1
    pads[half + axis] += 1
    _set_attr(node, "pads", pads)
    return _layer(node)


def change_stride(model, ctx):
    node = _middle(_convs(model, lambda n, w: max(_attr(n, "strides", [1])) > 1))
    if node is None:
        return None
    _set_attr(node, "strides", [1] * len(_attr(node, "strides")))
    return _layer(node)


def change_dilation(model, ctx):
    def candidate(node, w):
        k = w.shape[2:]
        pads = _attr(node, "pads", [0] * 2 * len(k))
        return max(k) == 3 and min(k) == 3 and max(_attr(node, "strides", [1])) == 1 \
            and max(_attr(node, "dilations", [1])) == 1 and set(pads) == {1}
    node = _middle(_convs(model, candidate))
    if node is None:
        return None
    rank = len(_attr(node, "kernel_shape"))
    _set_attr(node, "dilations", [2] * rank)
    _set_attr(node, "pads", [2] * (2 * rank))  # same output size: a numeric fault only
    return _layer(node)


def drop_bias(model, ctx):
    def biased(node, w):
        if len(node.input) < 3 or not node.input[2]:
            return False
        return float(np.abs(_get(model, node.input[2])).max()) > 0
    node = _middle(_convs(model, biased))
    if node is None:
        return None
    del node.input[2]
    return _layer(node)


def permute_transpose(model, ctx):
    for node in model.graph.node:
        perm = _attr(node, "perm")
        if node.op_type == "Transpose" and perm and len(perm) == 4:
            perm = list(perm)
            perm[2], perm[3] = perm[3], perm[2]  # swaps H and W of a square image
            _set_attr(node, "perm", perm)
            return _layer(node)
    return None


def relu_to_identity(model, ctx):
    node = _middle([n for n in model.graph.node if n.op_type == "Relu"])
    if node is None:
        return None
    node.op_type = "Identity"
    return _layer(node)


def bn_wrong_epsilon(model, ctx):
    """Refolds one BatchNormalization with the other common epsilon (Keras 1e-3 vs ONNX 1e-5)."""
    import keras

    folded = [e for e in ctx["tensor_map"] if e.status == "fused" and e.into
              and isinstance(_find_layer(ctx["model"], e.into), keras.layers.BatchNormalization)]
    names = {_layer(n): n for n in model.graph.node if n.op_type == "Conv"}
    folded = [e for e in folded if e.label in names and len(names[e.label].input) > 2]
    entry = _middle(folded)
    if entry is None:
        return None
    bn = _find_layer(ctx["model"], entry.into)
    node = names[entry.label]
    var = np.asarray(keras.ops.convert_to_numpy(bn.moving_variance), np.float64)
    eps = float(bn.epsilon)
    wrong = 1e-3 if eps < 1e-4 else 1e-5
    ratio = np.sqrt((var + eps) / (var + wrong))  # s' / s, per channel
    w = _get(model, node.input[1])
    _put(model, node.input[1], (w * ratio.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32))
    beta = np.asarray(keras.ops.convert_to_numpy(bn.beta), np.float64) if bn.center else 0.0
    b = _get(model, node.input[2]).astype(np.float64)
    _put(model, node.input[2], ((b - beta) * ratio + beta).astype(np.float32))
    return bn.name


def _find_layer(model, name):
    for layer in model._flatten_layers():
        if layer.name == name:
            return layer
    return None


MUTATIONS = {
    "scale_weight_1.05": scale_weight(1.05),
    "scale_weight_1.5": scale_weight(1.5),
    "swap_out_channels": swap_out_channels,
    "swap_channel_halves": swap_channel_halves,
    "flip_kernel": flip_kernel,
    "move_pad_side": move_pad_side,
    "change_stride": change_stride,
    "change_dilation": change_dilation,
    "drop_bias": drop_bias,
    "permute_transpose": permute_transpose,
    "relu_to_identity": relu_to_identity,
    "bn_wrong_epsilon": bn_wrong_epsilon,
}


def mutate(proto, name, ctx):
    """A mutated copy of `proto` and the layer it corrupted (None: not applicable)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    return copy, MUTATIONS[name](copy, ctx)


# --- INT8 (QDQ) faults: what goes wrong in quantized graphs ---------------------------

def _weight_dqs(model, op_types=("Conv", "ConvTranspose")):
    """(DequantizeLinear of an int8 weight, the node consuming it), in graph order."""
    inits = _inits(model)
    consumers = {i: n for n in model.graph.node for i in n.input}
    out = []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            user = consumers.get(node.output[0])
            if user is not None and user.op_type in op_types and user.input[1] == node.output[0]:
                out.append((node, user))
    return out


def weight_scale_x4(model, ctx):
    """A weight's per-channel scales off by 4x (a scale computed for the wrong range)."""
    found = _middle(_weight_dqs(model))
    if found is None:
        return None
    dq, user = found
    _put(model, dq.input[1], _get(model, dq.input[1]) * 4)
    return _layer(user)


def zero_point_moved(model, ctx):
    """An activation's DequantizeLinear reads a zero point 16 steps off its Quantize's."""
    inits = _inits(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers = {i: n for n in model.graph.node for i in n.input}
    candidates = []
    for node in model.graph.node:
        src = producers.get(node.input[0])
        if node.op_type == "DequantizeLinear" and node.input[0] not in inits and src is not None \
                and src.op_type == "QuantizeLinear" and len(node.input) > 2:
            user = producers.get(src.input[0])
            if user is not None and user.op_type in ("Conv", "ConvTranspose") \
                    and consumers.get(node.output[0]) is not None:
                candidates.append((node, user))
    found = _middle(candidates)
    if found is None:
        return None
    dq, user = found
    zp = _get(model, dq.input[2])
    moved = (zp.astype(np.int32) + (16 if zp.dtype == np.uint8 and zp.max() < 128 else -16))
    name = dq.input[2] + "_moved"
    model.graph.initializer.append(numpy_helper.from_array(moved.astype(zp.dtype), name))
    dq.input[2] = name
    return _layer(user)


def convtranspose_wrong_axis(model, ctx):
    """A ConvTranspose's per-channel weight scales applied on axis 0 (Conv's output axis)
    instead of axis 1 (needs as many input as output channels to stay well-formed)."""
    for dq, user in _weight_dqs(model, ("ConvTranspose",)):
        shape = _get(model, dq.input[0]).shape
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if axis == 1 and shape[0] == shape[1]:
            _set_attr(dq, "axis", 0)
            return _layer(user)
    return None


def first_judged_after(model, layer, report):
    """The layers of the first compared tensors downstream of `layer`'s nodes: where a fault
    in `layer` can first be seen (its own tensor, or the next one when the quantizer
    renamed or fused it away, e.g. a Conv whose Relu the uint8 range replaces)."""
    compared = {c.onnx: c.layer for c in report.checks if c.role == "internal" and c.onnx}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    stack = [o for n in model.graph.node if _layer(n) == layer for o in n.output]
    seen, found = set(), set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in compared:
            found.add(compared[name])
            continue
        for node in consumers.get(name, []):
            stack.extend(node.output)
    return found | {layer}


INT8_MUTATIONS = {
    "weight_scale_x4": weight_scale_x4,
    "zero_point_moved": zero_point_moved,
    "convtranspose_wrong_axis": convtranspose_wrong_axis,
}


def mutate_int8(proto, name, ctx=None):
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    return copy, INT8_MUTATIONS[name](copy, ctx)
