"""Fusion passes on the front end's graph, separate from conversions: each rewrites a
group of nodes into one node (named after the group's main node, listing the others in
`fused`) whose conversion makes one layer."""

import numpy as np

from keras_convx.importer.conversions.conv import pad_arguments
from keras_convx.importer.conversions.common import PAD_MODES
from keras_convx.importer.errors import Unsupported
from keras_convx.importer.graph import Node
from keras_convx.importer.registry import FUSED_DOMAIN

ONNX = ("", "ai.onnx")


def _single_user(graph, name):
    users = graph.consumers(name)
    if len(users) != 1 or name in graph.outputs:
        return None
    return users[0]


def _rank(graph, name):
    shape = graph.shapes.get(name)
    return None if shape is None else len(shape)


def fuse_pad_into_conv(graph):
    """Pad -> Conv becomes one keras_convx Conv with explicit padding and `padding_mode`,
    where exact: a spatial-only Pad (zeros adds to the Conv's pads; reflect/edge/wrap
    need a Conv without pads of its own)."""
    for pad in list(graph.nodes):
        if pad.op_type != "Pad" or pad.domain not in ONNX or not pad.inputs:
            continue
        conv = _single_user(graph, pad.outputs[0])
        if conv is None or conv.op_type != "Conv" or conv.inputs[0] != pad.outputs[0]:
            continue
        ndim = _rank(graph, pad.inputs[0])
        if ndim is None or any(i and i not in graph.constants for i in pad.inputs[1:]):
            continue
        try:
            pairs, mode, value = pad_arguments(
                pad.attrs, [graph.constants.get(i) if i else None for i in pad.inputs[1:]], ndim)
        except Unsupported:
            continue  # the Pad's own conversion reports it
        own = conv.attrs.get("pads") or []
        if conv.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            continue
        if mode == "constant":
            if value != 0.0:
                continue
            kc_mode = "zeros"
        else:
            if any(own):
                continue
            kc_mode = PAD_MODES[mode]
        conv.inputs[0] = pad.inputs[0]
        conv.extra["pad"] = (pairs, kc_mode)
        conv.fused.append(pad.name)
        graph.nodes.remove(pad)


def _const_scalar(graph, name):
    value = graph.constants.get(name)
    if value is None or np.size(value) != 1:
        return None
    return float(np.asarray(value).reshape(-1)[0])


def _other(node, name):
    """The input of a binary node that is not `name` (None unless exactly one is)."""
    if len(node.inputs) != 2 or node.inputs.count(name) != 1:
        return None
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


def fuse_erf_gelu(graph):
    """x -> Div(sqrt 2) | Mul(1/sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5): PyTorch's
    exact GELU before opset 20, as one Activation("gelu")."""
    for first in list(graph.nodes):
        if (first.domain not in ONNX or first.op_type not in ("Div", "Mul")
                or len(first.inputs) != 2):
            continue
        x, c = first.inputs
        scale = _const_scalar(graph, c)
        want = np.sqrt(2.0) if first.op_type == "Div" else 1 / np.sqrt(2.0)
        if scale is None or abs(scale - want) > 1e-4 or x in graph.constants:
            continue
        erf = _single_user(graph, first.outputs[0])
        if erf is None or erf.op_type != "Erf":
            continue
        add = _single_user(graph, erf.outputs[0])
        if add is None or add.op_type != "Add" or _const_scalar(
                graph, _other(add, erf.outputs[0])) != 1.0:
            continue
        mul = _single_user(graph, add.outputs[0])
        if mul is None or mul.op_type != "Mul" or _other(mul, add.outputs[0]) != x:
            continue
        half = _single_user(graph, mul.outputs[0])
        if half is None or half.op_type != "Mul" or _const_scalar(
                graph, _other(half, mul.outputs[0])) != 0.5:
            continue
        group = [first, erf, add, mul, half]
        fused = Node(erf.name, "Gelu", FUSED_DOMAIN, [x], list(half.outputs), {},
                     fused=[n.name for n in group if n is not erf])
        index = graph.nodes.index(half)
        graph.nodes[index] = fused
        for node in group[:-1]:
            graph.nodes.remove(node)


def fuse_matmul_add(graph):
    """MatMul(x, W) -> Add(bias), both constant, becomes one Dense with a bias."""
    for mm in list(graph.nodes):
        if mm.op_type != "MatMul" or mm.domain not in ONNX or len(mm.inputs) != 2:
            continue
        w = graph.constants.get(mm.inputs[1])
        if w is None or w.ndim != 2 or mm.inputs[0] in graph.constants:
            continue
        add = _single_user(graph, mm.outputs[0])
        if add is None or add.op_type != "Add":
            continue
        bias = graph.constants.get(_other(add, mm.outputs[0]) or "")
        if bias is None or bias.size != w.shape[1] or bias.shape[-1] != w.shape[1]:
            continue
        fused = Node(mm.name, "Dense", FUSED_DOMAIN,
                     [mm.inputs[0], mm.inputs[1], _other(add, mm.outputs[0])],
                     list(add.outputs), {}, fused=[add.name])
        graph.nodes[graph.nodes.index(add)] = fused
        graph.nodes.remove(mm)


def _replace(graph, group, op_type, x, name):
    """`group` (in graph order, the last one producing the result) becomes one fused node."""
    last = group[-1]
    fused = Node(name, op_type, FUSED_DOMAIN, [x], list(last.outputs), {},
                 fused=[n.name for n in group if n.name != name])
    graph.nodes[graph.nodes.index(last)] = fused
    for node in group[:-1]:
        graph.nodes.remove(node)


def fuse_mish(graph):
    """x -> Softplus -> Tanh -> Mul(x): PyTorch's F.mish before opset 18."""
    for softplus in list(graph.nodes):
        if softplus.op_type != "Softplus" or softplus.domain not in ONNX:
            continue
        x = softplus.inputs[0]
        tanh = _single_user(graph, softplus.outputs[0])
        if tanh is None or tanh.op_type != "Tanh":
            continue
        mul = _single_user(graph, tanh.outputs[0])
        if mul is None or mul.op_type != "Mul" or _other(mul, tanh.outputs[0]) != x:
            continue
        _replace(graph, [softplus, tanh, mul], "Mish", x, softplus.name)


def _clip_bounds(graph, clip):
    if "min" in clip.attrs or "max" in clip.attrs:
        return clip.attrs.get("min"), clip.attrs.get("max")
    bounds = [_const_scalar(graph, i) if i else None for i in clip.inputs[1:3]]
    return tuple(bounds + [None] * (2 - len(bounds)))


def _is_sixth(graph, node, name):
    """Whether `node` divides `name` by 6 or multiplies it by 1/6."""
    if node is None or node.domain not in ONNX:
        return False
    if node.op_type == "Div" and node.inputs[:1] == [name]:
        return _const_scalar(graph, node.inputs[1]) == 6.0
    value = _const_scalar(graph, _other(node, name) or "") if node.op_type == "Mul" else None
    return value is not None and abs(value - 1 / 6) < 1e-7


def fuse_hard_swish(graph):
    """x * HardSigmoid(x) (alpha 1/6, beta 0.5), and x * relu6(x + 3) / 6 in either order
    of the product and the division: one Activation("hard_silu")."""
    for first in list(graph.nodes):
        if first not in graph.nodes or first.domain not in ONNX:
            continue
        if first.op_type == "HardSigmoid":
            x = first.inputs[0]
            if abs(float(first.attrs.get("alpha", 0.2)) - 1 / 6) > 1e-6 or abs(
                    float(first.attrs.get("beta", 0.5)) - 0.5) > 1e-6:
                continue
            mul = _single_user(graph, first.outputs[0])
            if mul is not None and mul.op_type == "Mul" and _other(mul, first.outputs[0]) == x:
                _replace(graph, [first, mul], "HardSwish", x, first.name)
            continue
        if first.op_type != "Add" or len(first.inputs) != 2:
            continue
        x = next((i for i in first.inputs if i not in graph.constants), None)
        if x is None or _const_scalar(graph, _other(first, x) or "") != 3.0:
            continue
        clip = _single_user(graph, first.outputs[0])
        if clip is None or clip.op_type != "Clip" or _clip_bounds(graph, clip) != (0.0, 6.0):
            continue
        nxt = _single_user(graph, clip.outputs[0])
        if _is_sixth(graph, nxt, clip.outputs[0]):
            mul = _single_user(graph, nxt.outputs[0])
            if mul is not None and mul.op_type == "Mul" and _other(mul, nxt.outputs[0]) == x:
                _replace(graph, [first, clip, nxt, mul], "HardSwish", x, clip.name)
        elif nxt is not None and nxt.op_type == "Mul" and _other(nxt, clip.outputs[0]) == x:
            last = _single_user(graph, nxt.outputs[0])
            if _is_sixth(graph, last, nxt.outputs[0]):
                _replace(graph, [first, clip, nxt, last], "HardSwish", x, clip.name)


def qdq_pairs(nodes, constants, outputs):
    """(QuantizeLinear, DequantizeLinear) pairs on computed tensors whose quantized value
    only feeds the DequantizeLinear: the float graph is the one without them."""
    users = {}
    for node in nodes:
        for name in node.inputs:
            users.setdefault(name, []).append(node)
    pairs = []
    for q in nodes:
        if q.op_type != "QuantizeLinear" or q.domain not in ONNX or q.inputs[0] in constants:
            continue
        readers = users.get(q.outputs[0], [])
        if (len(readers) == 1 and readers[0].op_type == "DequantizeLinear"
                and readers[0].inputs[0] == q.outputs[0] and q.outputs[0] not in outputs):
            pairs.append((q, readers[0]))
    return pairs


def saturation_range(q, constants):
    """The float range a QuantizeLinear -> DequantizeLinear pair lets through,
    `[(qmin - zero_point) * scale, (qmax - zero_point) * scale]`; None when its
    parameters aren't per-tensor constants. The pair is that clip and a rounding: the
    clip stays (onnxruntime's quantizer drops a Relu or Clip whose range the
    quantization already clamps to), the rounding goes."""
    scale = constants.get(q.inputs[1]) if len(q.inputs) > 1 else None
    zero = constants.get(q.inputs[2]) if len(q.inputs) > 2 and q.inputs[2] else None
    if scale is None or np.size(scale) != 1 or zero is not None and np.size(zero) != 1:
        return None
    dtype = np.dtype(zero.dtype) if zero is not None else np.dtype(np.uint8)
    if not np.issubdtype(dtype, np.integer):
        return None
    info = np.iinfo(dtype)
    zp = 0 if zero is None else int(np.asarray(zero).reshape(-1)[0])
    s = float(np.asarray(scale, np.float32).reshape(-1)[0])
    return float(np.float32((info.min - zp) * s)), float(np.float32((info.max - zp) * s))


def remove_activation_qdq(graph):
    """A QDQ graph (onnxruntime's static quantization, PyTorch's) imports as the float
    model: weights were dequantized exactly by constant folding, and each activation
    QuantizeLinear -> DequantizeLinear pair becomes the clip to its range (no
    rounding); `graph.quantization` keeps the parameters."""
    for q, dq in qdq_pairs(graph.nodes, graph.constants, graph.outputs):
        bounds = saturation_range(q, graph.constants)
        if bounds is None:
            continue  # per-channel activations: DequantizeLinear has no conversion, named
        graph.nodes[graph.nodes.index(dq)] = Node(
            dq.name, "Saturate", FUSED_DOMAIN, [q.inputs[0]], list(dq.outputs), {},
            fused=[q.name], extra={"range": bounds})
        graph.nodes.remove(q)


def _per_channel(graph, node, name, channels, ndim):
    """The constant operand of `node` (other than `name`) as one value per channel, when
    it broadcasts as (C, 1, ...) against an N, C, spatial... tensor; else None."""
    value = graph.constants.get(_other(node, name) or "")
    if value is None or value.size != channels or value.ndim >= ndim:
        return None
    shape = (1,) * (ndim - value.ndim) + value.shape
    return value.reshape(-1) if shape[1] == channels else None


def fuse_group_norm(graph):
    """Reshape(N, G, -1) -> InstanceNormalization(ones, zeros) -> Reshape(back) [-> Mul
    (gamma) -> Add (beta)]: PyTorch's GroupNorm before opset 18, as one
    GroupNormalization (no move to ONNX's memory order and back)."""
    for first in list(graph.nodes):
        if first.op_type != "Reshape" or first.domain not in ONNX or first not in graph.nodes:
            continue
        x, target = first.inputs[0], graph.constants.get(first.inputs[1])
        shape = graph.shapes.get(x)
        if target is None or target.size != 3 or shape is None or len(shape) < 3 or \
                shape[1] is None:
            continue
        groups, channels = int(target.reshape(-1)[1]), shape[1]
        norm = _single_user(graph, first.outputs[0])
        if norm is None or norm.op_type != "InstanceNormalization" or groups < 1 or \
                channels % groups:
            continue
        scale, bias = (graph.constants.get(i) for i in norm.inputs[1:3])
        if scale is None or bias is None or not np.all(scale == 1) or np.any(bias):
            continue
        back = _single_user(graph, norm.outputs[0])
        if back is None or back.op_type != "Reshape" or graph.shapes.get(back.outputs[0]) != shape:
            continue
        group, last = [first, norm, back], back
        gamma = beta = None
        mul = _single_user(graph, back.outputs[0])
        if mul is not None and mul.op_type == "Mul":
            gamma = _per_channel(graph, mul, back.outputs[0], channels, len(shape))
            if gamma is not None:
                group, last = group + [mul], mul
                add = _single_user(graph, mul.outputs[0])
                if add is not None and add.op_type == "Add":
                    beta = _per_channel(graph, add, mul.outputs[0], channels, len(shape))
                    if beta is not None:
                        group, last = group + [add], add
        fused = Node(norm.name, "GroupNorm", FUSED_DOMAIN, [x], list(last.outputs), {},
                     fused=[n.name for n in group if n is not norm],
                     extra={"groups": groups, "epsilon": float(norm.attrs.get("epsilon", 1e-5)),
                            "gamma": np.ones(channels, np.float32) if gamma is None else gamma,
                            "beta": np.zeros(channels, np.float32) if beta is None else beta})
        graph.nodes[graph.nodes.index(last)] = fused
        for node in group:
            if node is not last:
                graph.nodes.remove(node)


def remove_dead_nodes(graph):
    """Nodes no output depends on (what a rewrite left unread, or the file's own dead
    code: onnxruntime drops it too) are removed, so they are neither converted nor
    refused."""
    live = set(graph.outputs)
    for node in reversed(graph.nodes):  # topological order: readers after their inputs
        if any(o in live for o in node.outputs):
            live.update(i for i in node.inputs if i)
    graph.nodes[:] = [n for n in graph.nodes if any(o in live for o in n.outputs)]


PASSES = (remove_activation_qdq, fuse_pad_into_conv, fuse_erf_gelu, fuse_matmul_add,
          fuse_mish, fuse_hard_swish, fuse_group_norm)


def run(graph):
    for fuse in PASSES:
        fuse(graph)
    return graph
