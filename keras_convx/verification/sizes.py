"""The sizes a graph with dynamic height/width is verified at, derived from the graph.

A real dynamic-size net does not run at every size: a text detector whose feature
pyramid adds a 2x up-sampled map to the map one stride up needs a multiple of its total
stride (32), a net without padding needs room for its kernels. The verifier used to feed
16x24 and 32x40 and crashed inside the runtime on such nets. Here the graph says what it
accepts: the total down-sampling factor along any path, and the smallest input every
unpadded window fits in.
"""

import math

# The smallest spatial size verified even where the graph would accept less (a 1x1
# conv net): enough pixels on every axis to keep the comparison informative.
MIN_SIZE = 16
# The least difference between the sizes of two dynamic axes in one run (a transposed map
# must not pass): the stride, or this where the stride is smaller.
MIN_AXIS_STEP = 8
# How many multiples of the derived base size are tried before verification gives up.
MAX_TRIES = 4


def symbolic_axes(onnx_model):
    """Whether any graph input has a symbolic axis after the batch (dynamic H/W...)."""
    initializers = {t.name for t in onnx_model.graph.initializer}
    for vi in onnx_model.graph.input:
        if vi.name in initializers:
            continue
        dims = vi.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") or d.dim_value < 1 for d in list(dims)[1:]):
            return True
    return False


def _attr(node, name, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _constant(name, constants):
    from onnx import numpy_helper

    tensor = constants.get(name)
    return None if tensor is None else numpy_helper.to_array(tensor)


def stride_and_extent(onnx_model):
    """(total down-sampling factor, smallest input extent) of the graph's spatial axes.

    The factor is the largest product of strides (divided by up-sampling scales) along
    any path from an input; the extent is the largest `factor_before * unpadded window`
    of a conv or pool, the input size below which that window no longer fits."""
    graph = onnx_model.graph
    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            value = _attr(node, "value", None)
            if value is not None:
                constants[node.output[0]] = value
    factor = {vi.name: 1.0 for vi in graph.input}
    total, extent = 1.0, 1.0
    for node in graph.node:
        f = max((factor.get(i, 1.0) for i in node.input if i and i not in constants),
                default=1.0)
        op = node.op_type
        if op in ("Conv", "MaxPool", "AveragePool", "LpPool", "ConvInteger", "QLinearConv"):
            strides = _attr(node, "strides", None) or [1]
            kernel = _attr(node, "kernel_shape", None)
            if kernel is None and op == "Conv" and len(node.input) > 1:
                weight = _constant(node.input[1], constants)
                kernel = list(weight.shape[2:]) if weight is not None else [1]
            kernel = kernel or [1]
            dilations = _attr(node, "dilations", None) or [1] * len(kernel)
            pads = _attr(node, "pads", None) or [0] * (2 * len(kernel))
            auto_pad = _attr(node, "auto_pad", b"NOTSET")
            same = (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) \
                .startswith("SAME")
            for i, k in enumerate(kernel):
                window = dilations[i % len(dilations)] * (k - 1) + 1
                padded = 0 if same else pads[i] + pads[i + len(kernel)]
                extent = max(extent, f * max(1, window - padded))
            f *= max(strides)
        elif op == "ConvTranspose":
            f /= max(_attr(node, "strides", None) or [1])
        elif op in ("Resize", "Upsample"):
            scales = _constant(node.input[2], constants) if op == "Resize" and \
                len(node.input) > 2 and node.input[2] else (
                    _constant(node.input[1], constants) if op == "Upsample" else None)
            if scales is not None and scales.size > 2:
                f /= max(float(s) for s in scales.reshape(-1)[2:])
        for out in node.output:
            factor[out] = f
        total = max(total, f)
    return total, extent


def derive_sizes(onnx_model):
    """(candidate base sizes, axis step) for the symbolic spatial axes of `onnx_model`:
    the sizes are multiples of the total stride, smallest first, the first at least the
    smallest extent every unpadded window fits in; the step (a multiple of the stride)
    separates the axes of one run (`axis_sizes`)."""
    total, extent = stride_and_extent(onnx_model)
    step = max(1, int(round(total)))
    base = step * max(1, math.ceil(max(extent, MIN_SIZE) / step))
    return [base * k for k in range(1, MAX_TRIES + 1)], step * math.ceil(MIN_AXIS_STEP / step)


def axis_sizes(size, step, count):
    """The sizes of `count` symbolic axes for one verification run: `size` is an int (the
    i-th axis gets `size + step * i`, so height and width differ and a transposed map
    can't pass) or a tuple of one size per axis."""
    if isinstance(size, (tuple, list)):
        if len(size) != count:
            raise ValueError(f"sizes: {tuple(size)} gives {len(size)} sizes, the graph has "
                             f"{count} dynamic axes after the batch")
        return [int(s) for s in size]
    return [int(size) + step * i for i in range(count)]


def parse_sizes(text):
    """`--sizes 32x64,64x96` (or `32,64`): a list of ints or tuples, or ValueError."""
    sizes = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            dims = tuple(int(d) for d in part.lower().split("x"))
        except ValueError:
            dims = ()
        if not dims or any(d < 1 for d in dims):
            raise ValueError(f"--sizes: {part!r} is not a size; expected positive integers "
                             f"like 32x64 (one per dynamic axis) or 32, comma-separated")
        sizes.append(dims[0] if len(dims) == 1 else dims)
    return sizes


def check_sizes(sizes):
    """`sizes=` as users pass it: a non-empty list of positive ints or tuples of them."""
    if sizes is None:
        return None
    if isinstance(sizes, (int, tuple)):
        sizes = [sizes]
    out = []
    for s in sizes:
        dims = s if isinstance(s, (tuple, list)) else (s,)
        if not dims or any(not isinstance(d, int) or isinstance(d, bool) or d < 1
                           for d in dims):
            raise ValueError(f"sizes: {s!r} is not a size; expected a positive int or a "
                             f"tuple of them (one per dynamic axis), e.g. sizes=[(32, 64)]")
        out.append(tuple(dims) if isinstance(s, (tuple, list)) else s)
    if not out:
        raise ValueError("sizes: give at least one size, e.g. sizes=[(32, 64)]")
    return out


def export_fills(model, onnx_model, sizes=None):
    """The sizes a Keras model's unknown dims after the batch take in each random
    verification run of its export `onnx_model`: `sizes` (see `check_sizes`) or two derived
    from the graph; None when the model has no such dims."""
    counts = [sum(d is None for d in list(kt.shape)[1:]) for kt in model.inputs]
    if not any(counts):
        return None
    derived, step = derive_sizes(onnx_model)
    chosen = check_sizes(sizes) or derived[:2]
    return [axis_sizes(size, step, max(counts)) for size in chosen]
