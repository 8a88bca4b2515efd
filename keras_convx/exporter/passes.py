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


# A Pad filling with at least this little (the lowest float32, as the importer pads a
# ceil_mode or asymmetric MaxPool, or -inf) never wins a window's maximum: ONNX MaxPool's
# own pads, which ignore padded cells, compute the same values. Left as a Pad, its output
# holds +-3.4e38 and a calibrated quantizer gives it a scale of ~1e36 (every value 0).
LOWEST_FILL = float(np.finfo(np.float32).min)


def _pad_fill(pad, arrays):
    """The constant a constant-mode Pad fills with (None when it is not a known constant)."""
    if _attr(pad, "mode", b"constant") not in (b"constant", "constant"):
        return None
    if len(pad.input) < 3 or not pad.input[2]:
        return 0.0
    return float(arrays[pad.input[2]]) if pad.input[2] in arrays else None


def _fusable(users, pad, kinds):
    return users and all(u.op_type in kinds and u.input[0] == pad.output[0]
                         and _attr(u, "auto_pad", None) is None for u in users)


def fuse_pad_into_conv(builder):
    """Moves a constant, spatial-only Pad into the `pads` of the windowed nodes it feeds:
    a zero Pad into Conv(s); a Pad filling with `LOWEST_FILL` or less into MaxPool(s)
    (their pads ignore padded cells: the same maximum), where each window keeps an input
    cell (pads smaller than the kernel, as ONNX runtimes require)."""
    nodes, arrays = builder.nodes, builder.initializers
    producers, consumers = _index(nodes)
    outputs = {o.name for o in builder.outputs}
    fused = 0
    for pad in list(nodes):
        if pad.op_type != "Pad" or pad.output[0] in outputs or pad.input[1] not in arrays:
            continue
        fill = _pad_fill(pad, arrays)
        users = consumers.get(pad.output[0], [])
        if fill is None or not (fill == 0.0 and _fusable(users, pad, ("Conv",)) or
                                fill <= LOWEST_FILL and _fusable(users, pad, ("MaxPool",))):
            continue
        width = [int(v) for v in arrays[pad.input[1]]]
        half = len(width) // 2
        if any(width[i] or width[half + i] for i in (0, 1)):
            continue  # pads batch or channels
        spatial = width[2:half] + width[half + 2:]
        merged = [[a + b for a, b in zip(_attr(u, "pads", [0] * len(spatial)), spatial)]
                  for u in users]
        if users[0].op_type == "MaxPool" and any(
                p >= k for u, pads in zip(users, merged)
                for p, k in zip(pads, list(_attr(u, "kernel_shape")) * 2)):
            continue  # a window wholly in the padding: ONNX MaxPool refuses such pads
        for node, pads in zip(users, merged):
            _set_attr(node, "pads", pads)
            node.input[0] = pad.input[0]
        builder.remove(pad, into=users[0])
        fused += 1
    return fused


def dynamic_batch(builder, symbol):
    """Makes the batch dynamic where a `call` was traced with `symbol` standing for it.

    Each integer constant holding multiples of `symbol` (a Reshape target of batch * heads,
    Tile repeats of the batch) is computed from the first input's batch instead:
    `batch * coefficients + offsets`. Anything else that holds the symbol (a float constant
    with it in its shape, an integer attribute) can't follow the batch and is refused.
    Returns how many constants were made dynamic.
    """
    _refuse_batch_attributes(builder, symbol)
    dynamic = {}  # initializer name -> the tensor computing it from the batch
    builder.scope = "dynamic_batch"
    # first: the Tiles' repeats are integer constants with the symbol, scaled next
    tiles = _tile_batch_constants(builder, symbol, dynamic)
    prelude = _scale_batch_integers(builder, symbol, dynamic)
    if not dynamic:
        return 0
    for node in builder.nodes:
        for i, name in enumerate(node.input):
            if name in dynamic:
                node.input[i] = dynamic[name]
    for node in tiles:
        node.input[1] = dynamic.get(node.input[1], node.input[1])
    builder.nodes[:0] = prelude + tiles  # they read only the graph input and constants
    for name in dynamic:
        builder.initializers.pop(name, None)
    return len(dynamic)


_BATCH_HINT = ("export with dynamic_axes=() and batch_size=N (a static batch), or "
               "compute the batch with keras.ops.shape(x)[0] in the layer")


def _multiples(values, symbol):
    """Where `values` (flattened) are non-zero multiples of `symbol`."""
    values = np.asarray(values).reshape(-1)
    return (values != 0) & (values % symbol == 0)


def _refuse_batch_attributes(builder, symbol):
    """An integer attribute can't follow the batch: one holding the symbol is refused."""
    from onnx import helper

    from keras_convx.exporter.graph import Unsupported

    for node in builder.nodes:
        for a in node.attribute:
            value = helper.get_attribute_value(a)
            if isinstance(value, (int, list)) and not isinstance(value, bool) and \
                    all(isinstance(v, int) for v in np.atleast_1d(value)) and \
                    np.any(_multiples(value if isinstance(value, list) else [value], symbol)):
                raise Unsupported(f"{node.name}: its attribute {a.name}={value} holds the "
                                  f"batch size as a number: {_BATCH_HINT}")


def _tile_batch_constants(builder, symbol, dynamic):
    """Each constant repeated along the symbol becomes a Tile of its first block (into
    `dynamic`); returns the Tiles' nodes, taken out of the graph's node list."""
    from keras_convx.exporter.graph import Unsupported

    tiles = []
    for name, array in list(builder.initializers.items()):
        axes = [a for a, d in enumerate(np.shape(array)) if d and d % symbol == 0]
        if not axes or np.asarray(array).dtype.kind not in "fiu":
            continue
        # a constant tiled along the batch (`ops.tile(self.cls_token, (batch, 1, 1))`: the
        # variable is no symbolic tensor): Tile of its first block by the graph's batch
        array, axis = np.asarray(array), axes[0]
        block = np.take(array, range(array.shape[axis] // symbol), axis=axis)
        reps = [1] * array.ndim
        reps[axis] = symbol
        if len(axes) > 1 or not np.array_equal(np.tile(block, reps), array):
            raise Unsupported(f"{name}: a constant of shape {array.shape} built with the batch "
                              f"size as a number: {_BATCH_HINT}")
        start = len(builder.nodes)
        dynamic[name] = builder.node("Tile", [builder.const(block, "block"),
                                              builder.ints(reps, "repeats")])
        tiles.extend(builder.nodes[start:])
        del builder.nodes[start:]
        del builder.initializers[name]
    return tiles


def _scale_batch_integers(builder, symbol, dynamic):
    """Each integer constant holding multiples of the symbol becomes `batch * coefficients
    + offsets` (into `dynamic`); returns the nodes computing them, taken out of the
    graph's node list."""
    from onnx import helper

    from keras_convx.exporter.graph import Unsupported

    batch, prelude = None, []
    for name, array in list(builder.initializers.items()):
        array = np.asarray(array)
        if array.dtype.kind not in "iu" or not np.any(_multiples(array, symbol)):
            continue
        if array.ndim > 1:
            raise Unsupported(f"{name}: an integer constant of shape {array.shape} holds the "
                              f"batch size as a number: {_BATCH_HINT}")
        start = len(builder.nodes)
        if batch is None:  # (1,): the first input's batch
            batch = builder.node("Slice", [builder.node("Shape", [builder.inputs[0].name]),
                                           builder.ints([0], "starts"), builder.ints([1], "ends")])
        is_multiple = _multiples(array, symbol).reshape(array.shape)
        source = batch if array.dtype == np.int64 else builder.node(
            "Cast", [batch], to=int(helper.np_dtype_to_tensor_dtype(array.dtype)))
        scaled = builder.node("Mul", [source, builder.const(
            np.where(is_multiple, array // symbol, 0).astype(array.dtype), "coefficients")])
        value = builder.node("Add", [scaled, builder.const(
            np.where(is_multiple, 0, array).astype(array.dtype), "offsets")])
        if array.ndim == 0:
            value = builder.node("Squeeze", [value, builder.ints([0], "axes")])
        dynamic[name] = value
        prelude.extend(builder.nodes[start:])
        del builder.nodes[start:]
    return prelude
