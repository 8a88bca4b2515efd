"""Helpers shared by conversions: attribute normalisation and spatial padding."""

import numpy as np

from keras_convx import interop
from keras_convx.importer.errors import Unsupported
from keras_convx.utils import shapes as S

from keras_convx import layers as kcl

# keras_convx padding modes of ONNX Pad modes (constant 0 is keras_convx's "zeros").
PAD_MODES = interop.PAD_MODE_FROM_ONNX


def ints(ctx, name, rank, default):
    """An int-list attribute with one entry per spatial axis."""
    value = ctx.attr(name)
    if value is None:
        return (default,) * rank
    value = tuple(int(v) for v in value)
    if len(value) != rank:
        raise Unsupported(f"attribute {name}={list(value)} needs {rank} entries (one per "
                          f"spatial axis)")
    return value


def positive(name, values):
    if any(v < 1 for v in values):
        raise Unsupported(f"attribute {name}={list(values)} must hold positive ints")
    return values


# `spatial_pads`'s answer for SAME_UPPER over unknown lengths with a stride: the pads
# depend on each input's size, which Keras's padding="same" computes at run time.
RUNTIME_SAME = "same"


def spatial_pads(ctx, lengths, kernel, strides, dilations):
    """(before, after) per spatial axis from `pads`/`auto_pad`, as ONNX Conv/Pool define
    them; `RUNTIME_SAME` for SAME_UPPER when they depend on a dynamic length."""
    rank = len(kernel)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pairs = [S.same_pads(n, k, s, d) for n, k, s, d in zip(lengths, kernel, strides,
                                                               dilations)]
        if None in pairs:
            if auto_pad == "SAME_LOWER":
                raise Unsupported("auto_pad=SAME_LOWER with a stride over a dynamic length: "
                                  "its pads depend on the size (Keras's 'same' is "
                                  "SAME_UPPER)")
            return RUNTIME_SAME
        return [p[::-1] for p in pairs] if auto_pad == "SAME_LOWER" else [tuple(p) for p in pairs]
    if auto_pad == "VALID":
        return [(0, 0)] * rank
    if auto_pad != "NOTSET":
        raise Unsupported(f"auto_pad={auto_pad!r}: accepted are NOTSET, VALID, SAME_UPPER, "
                          f"SAME_LOWER")
    pads = ctx.attr("pads")
    if pads is None:
        return [(0, 0)] * rank
    pads = [int(p) for p in pads]
    if len(pads) != 2 * rank or any(p < 0 for p in pads):
        raise Unsupported(f"pads={pads} must be {2 * rank} non-negative ints")
    return [(pads[i], pads[i + rank]) for i in range(rank)]


def spatial_layer(name, rank):
    """keras_convx's rank-specific class, e.g. spatial_layer("Conv", 2) -> kcl.Conv2D."""
    if rank not in (1, 2, 3):
        raise Unsupported(f"{rank} spatial axes: accepted are 1, 2 and 3")
    return getattr(kcl, name.replace("#", f"{rank}D"))


def pad_layer(ctx, x, pairs, mode, value=0.0, suffix=None):
    """A keras_convx PaddingND on the Keras tensor `x` (spatial pairs in ONNX axis order)."""
    rank = len(pairs)
    return ctx.layer(spatial_layer("Padding#", rank), padding=tuple(tuple(p) for p in pairs),
                     mode=mode, constant_value=float(value), data_format=ctx.data_format,
                     inputs=x, suffix=suffix)


def float32(array, what):
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise Unsupported(f"{what} must be floating point, got {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise Unsupported(f"{what} holds non-finite values")
    return array.astype(np.float32)
