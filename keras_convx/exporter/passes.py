"""Clean-up passes over the lowered graph (nodes + numpy initializers), kept apart from
the lowerings. Each returns how many nodes it removed.

Every removal goes through the builder (`replace_output`, `remove`), which keeps the
Keras-tensor map true: verification and diagnosis read only that map."""

import numpy as np


def _index(nodes):
    producers = {o: n for n in nodes for o in n.output}
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producers, consumers


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node, name, value):
    from onnx import helper

    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def fold_batch_norm(builder):
    """Folds inference BatchNormalization into a preceding Conv whose only consumer it is."""
    nodes, arrays = builder.nodes, builder.initializers
    producers, consumers = _index(nodes)
    outputs = {o.name for o in builder.outputs}
    folded = 0
    for bn in list(nodes):
        if bn.op_type != "BatchNormalization":
            continue
        conv = producers.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or conv.output[0] in outputs \
                or len(consumers.get(conv.output[0], [])) != 1:
            continue
        if not all(n in arrays for n in list(bn.input[1:5]) + [i for i in conv.input[1:] if i]):
            continue
        gamma, beta, mean, var = (arrays[n].astype(np.float64) for n in bn.input[1:5])
        scale = gamma / np.sqrt(var + _attr(bn, "epsilon", 1e-5))
        w = arrays[conv.input[1]]
        has_bias = len(conv.input) > 2 and conv.input[2]
        bias = arrays[conv.input[2]].astype(np.float64) if has_bias else np.zeros(w.shape[0])
        # float32 product: float64 here would double a ~100 MB weight set for no gain
        arrays[conv.input[1]] = w * scale.astype(np.float32).reshape((-1,) + (1,) * (w.ndim - 1))
        bias_name = builder.unique(conv.input[1] + "_folded_bias")
        arrays[bias_name] = ((bias - mean) * scale + beta).astype(np.float32)
        if has_bias:
            conv.input[2] = bias_name
        else:
            conv.input.append(bias_name)
        # the Conv's own output (the pre-BN Keras tensor) is gone; the Conv now writes BN's
        builder.replace_output(conv, bn.output[0], into=bn)
        nodes.remove(bn)
        folded += 1
    return folded


def fuse_pad_into_conv(builder):
    """Moves a zero, spatial-only Pad into the pads of the Conv(s) it feeds."""
    nodes, arrays = builder.nodes, builder.initializers
    producers, consumers = _index(nodes)
    outputs = {o.name for o in builder.outputs}
    fused = 0
    for pad in list(nodes):
        if pad.op_type != "Pad" or _attr(pad, "mode", b"constant") not in (b"constant", "constant"):
            continue
        if pad.output[0] in outputs or pad.input[1] not in arrays:
            continue
        if len(pad.input) > 2 and pad.input[2] and (pad.input[2] not in arrays or
                                                     float(arrays[pad.input[2]]) != 0.0):
            continue
        users = consumers.get(pad.output[0], [])
        if not users or any(u.op_type != "Conv" or u.input[0] != pad.output[0] for u in users):
            continue
        width = [int(v) for v in arrays[pad.input[1]]]
        half = len(width) // 2
        if any(width[i] or width[half + i] for i in (0, 1)):
            continue  # pads batch or channels
        spatial = width[2:half] + width[half + 2:]
        for conv in users:
            pads = list(_attr(conv, "pads", [0] * len(spatial)))
            _set_attr(conv, "pads", [a + b for a, b in zip(pads, spatial)])
            conv.input[0] = pad.input[0]
        builder.remove(pad, into=users[0])
        fused += 1
    return fused
