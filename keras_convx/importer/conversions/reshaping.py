"""Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Slice, Gather and Tile, moving data
only where ONNX's memory order really matters (Resize is in `resizing`)."""

import keras
import numpy as np

from keras_convx import interop
from keras_convx.importer.context import Value, same_memory_order
from keras_convx.importer.errors import Unsupported
from keras_convx.layers.tensor_ops import Slice, Tile
from keras_convx.importer.registry import conversion

L = keras.layers
DENSE_OPS = ("Gemm", "MatMul", "Dense")


def _flat_order(value):
    """ONNX flat index of each Keras flat position of a value flattened in Keras order."""
    shape = value.shape[1:]
    index = np.arange(int(np.prod(shape))).reshape(shape)
    return np.transpose(index, [p - 1 for p in value.perm[1:]]).reshape(-1)


def _only_dense_consumers(ctx):
    out = ctx.node.outputs[0]
    users = ctx.consumers(out)
    return bool(users) and not ctx.is_graph_output(out) and all(
        u.op_type in DENSE_OPS and len(u.inputs) > 1 and u.inputs[0] == out
        and u.inputs[1] in ctx.walk.graph.constants for u in users)


def flatten(ctx, value):
    """(N, d1, d2, ...) -> (N, d1*d2*...): in place when the memory order already agrees,
    as a Keras-order flatten read by permuted Gemm/MatMul weights, else after a Permute."""
    if value.flat is not None:
        raise Unsupported("flattening an already flattened tensor")
    if same_memory_order(value):
        return Value(ctx.layer(L.Flatten, inputs=value.tensor), (0, 1))
    if _only_dense_consumers(ctx):
        return Value(ctx.layer(L.Flatten, inputs=value.tensor), (0, 1), flat=_flat_order(value))
    moved = ctx.move(value, tuple(range(value.ndim)))
    return Value(ctx.layer(L.Flatten, inputs=moved.tensor), (0, 1))


@conversion("Flatten", since=1)
def convert_flatten(ctx):
    axis = int(ctx.attr("axis", 1)) % max(ctx.x.ndim, 1)
    if axis != 1:
        raise Unsupported(f"axis={axis}: only 1 (keep the batch axis) is supported")
    if ctx.x.ndim == 2:
        return ctx.x
    return flatten(ctx, ctx.x)


def _reshape_target(shape, target, allowzero, batch, batch_first=False):
    """The ONNX target shape resolved against the input `shape` (batch None when dynamic);
    the batch axis must stay: target[0] is 0 (copy), -1, the static batch size, or (with
    `batch_first`) computed as exactly the dynamic batch size."""
    if not target:
        raise Unsupported("shape=[] removes the batch axis")
    first, rest = target[0], list(target[1:])
    if not batch_first and (first not in (0, -1) and first != batch or first == 0 and allowzero):
        raise Unsupported(f"shape={target} changes the batch axis (batch {batch})")
    for i, t in enumerate(rest, 1):
        if t == 0 and not allowzero:
            if i >= len(shape):
                raise Unsupported(f"shape={target}: 0 at axis {i} beyond the input's rank")
            rest[i - 1] = shape[i]
    if first == -1 and not batch_first and -1 in rest or sum(1 for t in rest if t == -1) > 1 or any(
            t < -1 for t in rest):
        raise Unsupported(f"shape={target}: at most one -1 and no other negative values")
    return [None] + _filled(rest, int(np.prod(shape[1:])), target, "per sample")


def _filled(rest, total, target, where):
    """`rest` (target sizes, one -1 at most) with its -1 resolved to hold `total` elements;
    `where` says whose elements in errors."""
    known = int(np.prod([t for t in rest if t != -1]))
    if -1 in rest:
        if known == 0 or total % known:
            raise Unsupported(f"shape={target} does not fit the {total} elements {where}")
        rest[rest.index(-1)] = total // known
    if int(np.prod(rest)) != total:
        raise Unsupported(f"shape={target} holds {int(np.prod(rest))} elements {where}, "
                          f"the input {total}")
    return rest


@conversion("Reshape", since=1)
def convert_reshape(ctx):
    x = ctx.x
    if ctx.attr("shape") is not None:  # opset < 5
        target = [int(t) for t in ctx.attr("shape")]
    else:
        target = [int(t) for t in np.asarray(ctx.const(1, "shape", batch_ok=True)).reshape(-1)]
    if x.perm[0] != 0:
        return _reshape_moved_batch(ctx, x, target, int(ctx.flag("allowzero", 0)))
    inferred = ctx.walk.graph.shapes.get(ctx.node.inputs[0])
    batch = inferred[0] if inferred else None
    out = _reshape_target(list(x.shape), target, int(ctx.flag("allowzero", 0)), batch,
                          batch_first=ctx.attr("shape") is None and ctx.keeps_batch(1))
    if x.flat is not None:
        raise Unsupported("reshaping a flattened tensor in Keras order")
    relabel = interop.unit_axes_relabel(tuple(x.shape), tuple(out))
    if relabel is not None and relabel[0] == 0:
        # only size-1 axes move (NHWC <-> NCHW of one channel): relabel, no layer
        inverse = interop.inverse(relabel)
        return Value(x.tensor, tuple(inverse[p] for p in x.perm))
    if len(out) == 2 and x.ndim > 2:
        return flatten(ctx, x)
    grouped = _reshape_in_layout(ctx, x, out)
    if grouped is not None:
        return grouped
    if not same_memory_order(x):
        x = ctx.move(x, tuple(range(x.ndim)))
    return Value(ctx.layer(L.Reshape, tuple(out[1:]), inputs=x.tensor), tuple(range(len(out))))


def _reshape_moved_batch(ctx, x, target, allowzero):
    """A Reshape of a tensor whose batch a Transpose moved to ONNX axis b > 0 (time-major
    sequences: PyTorch's bidirectional LSTM output `(seq, batch, 2, hidden)` -> `(seq,
    batch, 2 * hidden)`): exact when it keeps axes 0..b and regroups only the axes after
    the batch. The Keras tensor is laid out (batch, ONNX axes 0..b-1, the rest in ONNX
    order), so those axes are contiguous in both memories and one Keras Reshape of the
    axes after the batch is the same reshape."""
    b, shape = x.perm[0], x.shape
    if x.flat is not None:
        raise Unsupported("reshaping a flattened tensor in Keras order")
    inferred = ctx.walk.graph.shapes.get(ctx.node.inputs[0]) or shape  # (a static batch)
    for i, t in enumerate(target[:b + 1]):
        if not (t == 0 and not allowzero or inferred[i] is not None and t == inferred[i]
                or i == b and t == -1 and -1 not in target[b + 1:]):
            raise Unsupported(f"shape={target} changes axis {i}, before or at the batch (ONNX "
                              f"axis {b}, moved by a Transpose): only the axes after the "
                              f"batch can be regrouped")
    rest = [shape[i] if t == 0 and not allowzero and i < len(shape) else t
            for i, t in enumerate(target[b + 1:], b + 1)]
    total = shape[b + 1:]
    if None in total or None in rest or sum(1 for t in rest if t == -1) > 1 or any(
            t < -1 for t in rest):
        raise Unsupported(f"shape={target}: the axes after the batch must be static, with at "
                          f"most one -1")
    rest = _filled(rest, int(np.prod(total)), target, "after the batch")
    lead = tuple(range(b))
    x = ctx.move(x, (b,) + lead + tuple(range(b + 1, x.ndim)), "to_batch_first")
    keras_shape = tuple(-1 if shape[i] is None else shape[i] for i in lead) + tuple(rest)
    if keras_shape.count(-1) > 1:
        raise Unsupported(f"shape={target}: more than one dynamic axis before the batch")
    perm = (b,) + lead + tuple(range(b + 1, b + 1 + len(rest)))
    return Value(ctx.layer(L.Reshape, keras_shape, inputs=x.tensor), perm)


def reshape_groups(in_shape, out_shape):
    """How a reshape regroups axes: `[(input axes, output axes)]` of equal products over
    the axes larger than 1 (batch excluded), in ONNX order; None when a size is unknown
    or the products never meet."""
    ins = [i for i in range(1, len(in_shape)) if in_shape[i] != 1]
    outs = [j for j in range(1, len(out_shape)) if out_shape[j] != 1]
    if any(in_shape[i] is None for i in ins) or any(out_shape[j] is None for j in outs):
        return None
    groups, i, j = [], 0, 0
    while i < len(ins) and j < len(outs):
        gi, gj = [ins[i]], [outs[j]]
        pi, pj = in_shape[ins[i]], out_shape[outs[j]]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj and i < len(ins):
                gi.append(ins[i])
                pi, i = pi * in_shape[ins[i]], i + 1
            elif pj < pi and j < len(outs):
                gj.append(outs[j])
                pj, j = pj * out_shape[outs[j]], j + 1
            else:
                return None
        groups.append((gi, gj))
    return groups if i == len(ins) and j == len(outs) else None


def _reshape_in_layout(ctx, x, out):
    """The reshape done in the tensor's own layout: each group of axes it merges or splits
    is made contiguous and in ONNX order in Keras's memory (a Permute only when some
    group isn't), the groups keep their Keras order, and the result's axes are labelled
    accordingly. Channel shuffle on channels-last data is one Permute this way; a split
    of the channels (attention heads) or a merge of height and width none."""
    shape = x.shape
    groups = reshape_groups(shape, out)
    if groups is None or same_memory_order(x):
        return None
    group_of = {a: k for k, (gi, _) in enumerate(groups) for a in gi}
    order = []
    for a in x.perm[1:]:
        if a in group_of and group_of[a] not in order:
            order.append(group_of[a])
    ones_in = [a for a in x.perm[1:] if shape[a] == 1]
    target = (0,) + tuple(a for k in order for a in groups[k][0]) + tuple(ones_in)
    x = ctx.move(x, target)
    ones_out = [j for j in range(1, len(out)) if out[j] == 1]
    perm = (0,) + tuple(b for k in order for b in groups[k][1]) + tuple(ones_out)
    keras_shape = tuple(out[p] for p in perm[1:])
    return Value(ctx.layer(L.Reshape, keras_shape, inputs=x.tensor), perm)


@conversion("Transpose", since=1)
def convert_transpose(ctx):
    """Relabels axes: no layer (the next op that needs an order gets a Permute)."""
    x = ctx.x
    perm = ctx.attr("perm")
    perm = tuple(range(x.ndim))[::-1] if perm is None else tuple(int(p) for p in perm)
    if sorted(perm) != list(range(x.ndim)):
        raise Unsupported(f"perm={list(perm)} is not a permutation of {x.ndim} axes")
    # a Transpose that moves the batch (PyTorch's batch_first LSTM: time-major) only
    # relabels too; what follows must take the batch where it is (the driver checks)
    if x.flat is not None:
        raise Unsupported("transposing a flattened tensor in Keras order")
    inverse = interop.inverse(perm)
    return Value(x.tensor, tuple(inverse[p] for p in x.perm))


def _axes(ctx, index, ndim):
    if ctx.attr("axes") is not None:
        axes = ctx.attr("axes")
    elif index < len(ctx.inputs) and ctx.inputs[index] is not None:
        axes = np.asarray(ctx.const(index, "axes")).reshape(-1)
    else:
        return None
    axes = sorted({int(a) % ndim for a in axes}) if ndim else []
    batch = ctx.x.perm[0] if ctx.x is not None else 0  # (a Transpose may have moved it)
    if batch in axes:
        raise Unsupported(f"axes={axes} include the batch axis")
    return axes


def _drop_axes(ctx, x, keep, new_ndim, where):
    """Reshape the Keras tensor to drop/insert size-1 axes without moving data: `keep` maps
    each Keras axis to its new ONNX axis (None: dropped); `where` lists new ONNX axes."""
    perm = [keep[p] for p in x.perm if keep[p] is not None] + list(where)
    keras_shape = [x.tensor.shape[i] for i, p in enumerate(x.perm) if keep[p] is not None]
    keras_shape += [1] * len(where)
    return Value(ctx.layer(L.Reshape, tuple(keras_shape[1:]), inputs=x.tensor,
                           suffix="reshape" if ctx.node.op_type == "Gather" else None),
                 tuple(perm))


@conversion("Squeeze", since=1)
def convert_squeeze(ctx):
    x = ctx.x
    shape = x.shape
    axes = _axes(ctx, 1, x.ndim)
    if axes is None:
        axes = [i for i in range(x.ndim) if i != x.perm[0] and shape[i] == 1]
    if any(shape[a] != 1 for a in axes):
        raise Unsupported(f"axes={axes} of shape {list(shape)} are not all of size 1")
    if x.flat is not None:
        raise Unsupported("squeezing a flattened tensor in Keras order")
    keep, j = {}, 0
    for a in range(x.ndim):
        keep[a] = None if a in axes else j
        j += a not in axes
    return _drop_axes(ctx, x, keep, x.ndim - len(axes), [])


@conversion("Unsqueeze", since=1)
def convert_unsqueeze(ctx):
    x = ctx.x
    raw = ctx.attr("axes")
    if raw is None:
        raw = np.asarray(ctx.const(1, "axes")).reshape(-1)
    ndim = x.ndim + len(raw)
    axes = sorted({int(a) % ndim for a in raw})
    if 0 in axes:
        raise Unsupported(f"axes={axes} insert a new batch axis")
    if x.flat is not None:
        raise Unsupported("unsqueezing a flattened tensor in Keras order")
    old = [a for a in range(ndim) if a not in axes]
    keep = {i: old[i] for i in range(x.ndim)}
    return _drop_axes(ctx, x, keep, ndim, axes)


def onnx_slice_indices(length, start, end, step):
    """The indices ONNX Slice picks along one axis (the spec's clamping rules)."""
    if step == 0:
        raise Unsupported("steps must be non-zero")
    start = start + length if start < 0 else start
    end = end + length if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), length), min(max(end, 0), length)
    else:
        start, end = min(max(start, 0), length - 1), min(max(end, -1), length - 1)
    return list(range(start, end, step))


@conversion("Slice", since=1)
def convert_slice(ctx):
    x = ctx.x
    shape = x.shape
    if ctx.attr("starts") is not None:  # opset < 10
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes"), None
    else:
        starts = np.asarray(ctx.const(1, "starts")).reshape(-1)
        ends = np.asarray(ctx.const(2, "ends")).reshape(-1)
        axes = ctx.const(3, "axes", optional=True) if len(ctx.inputs) > 3 else None
        steps = ctx.const(4, "steps", optional=True) if len(ctx.inputs) > 4 else None
    axes = list(range(len(starts))) if axes is None else [int(a) % x.ndim for a in
                                                          np.asarray(axes).reshape(-1)]
    steps = [1] * len(starts) if steps is None else [int(s) for s in np.asarray(steps).reshape(-1)]
    if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes):
        raise Unsupported(f"starts/ends/axes/steps need one entry per distinct axis, got "
                          f"{len(starts)}/{len(ends)}/{axes}/{steps}")
    if x.flat is not None:
        raise Unsupported("slicing a flattened tensor in Keras order")
    begin, end, step = [0] * (x.ndim - 1), [None] * (x.ndim - 1), [1] * (x.ndim - 1)
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = shape[a]
        if a == x.perm[0]:  # the batch (axis 1 of a time-major tensor)
            if int(s) != 0 or st != 1 or int(e) < (1 << 31) - 1:
                raise Unsupported("slicing the batch axis is not supported")
            continue
        picked = onnx_slice_indices(n, int(s), int(e), st)
        if not picked:
            raise Unsupported(f"axis {a}: starts={int(s)}, ends={int(e)}, steps={st} select "
                              f"nothing of length {n}")
        k = x.keras_axis(a) - 1
        begin[k], step[k] = picked[0], st
        stop = picked[-1] + st
        end[k] = None if stop < 0 else stop
    return ctx.layer(Slice, begin=begin, end=end, step=step)


@conversion("Gather", since=1)
def convert_gather(ctx):
    """Constant indices forming a strided range on a non-batch axis (`x[:, :, -1]`,
    `x[:, 2:5]`): a Slice, and a Reshape dropping the axis for a scalar index."""
    x = ctx.x
    if ctx.inputs[0] is not x:
        raise Unsupported("only gathering from a computed tensor with constant indices")
    indices = np.asarray(ctx.const(1, "indices"))
    axis = int(ctx.attr("axis", 0)) % x.ndim
    if x.ndim == 1:
        raise Unsupported("gathers from a 1-D tensor computed at run time (a Shape "
                          "vector: the graph computes sizes from the input, a value-dependent "
                          "shape), not from a feature map")
    if axis == 0:
        raise Unsupported("gathering along the batch axis is not supported")
    if indices.ndim > 1 or indices.size == 0:
        raise Unsupported(f"indices of shape {list(indices.shape)}: a scalar or a non-empty "
                          f"1-D range only")
    n = x.shape[axis]
    picked = [int(i) + n if int(i) < 0 else int(i) for i in indices.reshape(-1)]
    if any(not 0 <= i < n for i in picked):
        raise Unsupported(f"indices {indices.tolist()} out of range for length {n}")
    step = picked[1] - picked[0] if len(picked) > 1 else 1
    if step == 0 or picked != list(range(picked[0], picked[0] + step * len(picked), step)):
        raise Unsupported(f"indices {indices.tolist()} are not an evenly spaced range")
    begin, end, steps = [0] * (x.ndim - 1), [None] * (x.ndim - 1), [1] * (x.ndim - 1)
    k = x.keras_axis(axis) - 1
    stop = picked[-1] + step
    begin[k], end[k], steps[k] = picked[0], None if stop < 0 else stop, step
    sliced = Value(ctx.layer(Slice, begin=begin, end=end, step=steps), x.perm)
    if indices.ndim == 1:
        return sliced
    keep, j = {}, 0
    for a in range(x.ndim):
        keep[a] = None if a == axis else j
        j += a != axis
    return _drop_axes(ctx, sliced, keep, x.ndim - 1, [])


@conversion("Tile", since=6)
def convert_tile(ctx):
    x = ctx.x
    repeats = [int(r) for r in np.asarray(ctx.const(1, "repeats")).reshape(-1)]
    if len(repeats) != x.ndim or any(r < 1 for r in repeats):
        raise Unsupported(f"repeats={repeats}: needs {x.ndim} positive ints")
    if repeats[0] != 1:
        raise Unsupported(f"repeats={repeats}: tiling the batch axis is not supported")
    return Value(ctx.layer(Tile, [repeats[p] for p in x.perm[1:]]), x.perm)


@conversion("Shape", since=1)
def convert_shape(ctx):
    """A Shape the front end could not fold: its input has dynamic axes after the batch."""
    raise Unsupported(f"the shape of a tensor with dynamic axes after the batch "
                      f"{list(ctx.x.shape)} is computed at run time (a value-dependent "
                      f"shape); a file exported with static height/width imports")
