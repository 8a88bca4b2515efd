"""Resize -> keras_convx UpSamplingND (its interpolation, corner alignment and
exclude-outside from the ONNX coordinate mode, `interop.upsampling_from_resize`), or
keras.layers.Resizing for its own nearest mode."""

import keras
import numpy as np

from keras_convx import interop
from keras_convx.importer.conversions.common import spatial_layer
from keras_convx.importer.errors import Unsupported
from keras_convx.importer.registry import SPATIAL, conversion

L = keras.layers


@conversion("Resize", since=10, layout=SPATIAL)
def convert_resize(ctx):
    x = ctx.x
    rank = x.ndim - 2
    inputs = ctx.inputs
    scales = sizes = None
    if len(inputs) == 2:  # opset 10: X, scales
        scales = ctx.const(1, "scales")
    else:
        if len(inputs) > 2 and inputs[2] is not None and np.size(ctx.const(2, "scales")):
            scales = ctx.const(2, "scales")
        if len(inputs) > 3 and inputs[3] is not None:
            sizes = ctx.const(3, "sizes", batch_ok=True)  # sizes[0] is not read
            sizes = sizes if np.size(sizes) else None
    if ctx.attr("axes") is not None:  # opset 18: scales/sizes of these axes only
        axes = [int(a) % x.ndim for a in ctx.attr("axes")]
        if len(set(axes)) != len(axes):
            raise Unsupported(f"axes={ctx.attr('axes')} repeat an axis")
        given = scales if scales is not None else sizes
        given = [float(v) for v in np.asarray(given if given is not None else []).reshape(-1)]
        if len(given) != len(axes):
            raise Unsupported(f"axes={axes} need one scale or size each, got {given}")
        full = [1.0] * x.ndim if scales is not None else [float(n or 0) for n in x.shape]
        for a, v in zip(axes, given):
            full[a] = v
        if scales is not None:
            scales = np.asarray(full, np.float32)
        else:
            sizes = np.asarray(full, np.int64)
    lengths = x.shape[2:]
    if None in lengths and (sizes is not None or scales is None):
        raise Unsupported("sizes over a dynamic height/width: the scale depends on the "
                          "input's size (resize by constant scales instead)")
    if sizes is not None:
        sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
        if len(sizes) != x.ndim or sizes[1] != x.shape[1]:
            raise Unsupported(f"sizes={sizes}: needs {x.ndim} entries keeping the channels")
        out = sizes[2:]
        if any(m < 1 for m in out):
            raise Unsupported(f"sizes={sizes} must be positive")
        factors = [m / n for m, n in zip(out, lengths)]
    elif scales is not None:
        scales = [float(v) for v in np.asarray(scales).reshape(-1)]
        if len(scales) != x.ndim or scales[0] != 1 or scales[1] != 1:
            raise Unsupported(f"scales={scales}: needs {x.ndim} entries, 1 for batch and "
                              f"channels")
        if any(not np.isfinite(s) or s <= 0 or s > 1024 for s in scales):
            raise Unsupported(f"scales={scales} must be in (0, 1024]")
        factors = scales[2:]
        out = [None if n is None else int(n * s + 1e-9) for n, s in zip(lengths, factors)]
    else:
        raise Unsupported("needs constant scales or sizes")
    try:
        interpolation, align, exclude = interop.upsampling_from_resize(ctx.attrs, factors,
                                                                      lengths, out)
    except ValueError as err:
        if rank == 2 and _keras_nearest(ctx.attrs):
            # keras.layers.Resizing's nearest (what the exporter lowers it to), any size
            return ctx.layer(L.Resizing, int(out[0]), int(out[1]), interpolation="nearest",
                             data_format=ctx.data_format)
        raise Unsupported(str(err)) from None
    size = tuple(int(f) if float(f).is_integer() else f for f in factors)
    extra = {"exclude_outside": True} if exclude else {}
    return ctx.layer(spatial_layer("UpSampling#", rank), size=size, interpolation=interpolation,
                     align_corners=align, data_format=ctx.data_format, **extra)


def _keras_nearest(attrs):
    """Whether a Resize is keras.layers.Resizing's nearest mode (defaults as in the spec)."""
    return (attrs.get("mode", "nearest"), attrs.get("coordinate_transformation_mode", "half_pixel"),
            attrs.get("nearest_mode", "round_prefer_floor"), attrs.get("antialias", 0),
            attrs.get("exclude_outside", 0)) == ("nearest", "half_pixel", "round_prefer_ceil", 0, 0)
