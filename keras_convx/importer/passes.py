"""Fusion passes on the front end's graph, separate from conversions: each rewrites a
group of nodes into one node (named after the group's main node, listing the others in
`fused`) whose conversion makes one layer."""

import numpy as np

from keras_convx.importer.conversions.conv import pad_arguments
from keras_convx.importer.conversions.common import PAD_MODES
from keras_convx.importer.errors import Unsupported
from keras_convx.importer.frontend import Node
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


PASSES = (fuse_pad_into_conv, fuse_erf_gelu, fuse_matmul_add)


def run(graph):
    for fuse in PASSES:
        fuse(graph)
    return graph
