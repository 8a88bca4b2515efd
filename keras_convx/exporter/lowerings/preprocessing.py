"""Lowerings of the Keras preprocessing layers that models carry inside: Rescaling,
Normalization, Resizing, CenterCrop."""

import keras
import numpy as np
from keras.src.ops import image as image_ops

from keras_convx.exporter.graph import Unsupported, float_array
from keras_convx.exporter.lowerings.common import const_in_layout
from keras_convx.exporter.registry import CHANNELS_FIRST, lowering

L = keras.layers


def _array(value):
    if isinstance(value, (int, float)):
        return np.asarray(value, np.float32)
    return np.asarray(keras.ops.convert_to_numpy(value), np.float32)


@lowering(L.Rescaling)
def lower_rescaling(b, layer, ctx):
    x = ctx.x
    scale, offset = _array(layer.scale), _array(layer.offset)
    if scale.ndim and keras.config.image_data_format() == "channels_first":
        scale = scale.reshape(scale.shape + (1,) * (3 - scale.ndim))  # as Rescaling.call
    y = b.node("Mul", [x.name, b.const(const_in_layout(scale, x.perm), "scale")])
    if np.any(offset != 0):
        y = b.node("Add", [y, b.const(const_in_layout(offset, x.perm), "offset")])
    return y


@lowering(L.Normalization)
def lower_normalization(b, layer, ctx):
    x = ctx.x
    if layer.mean is None:
        raise Unsupported("Normalization without mean/variance (call adapt() first)")
    mean = float_array(layer.mean)
    std = np.maximum(np.sqrt(float_array(layer.variance)),
                     np.float32(keras.config.epsilon())).astype(np.float32)
    mean_c = b.const(const_in_layout(mean, x.perm), "mean")
    if layer.invert:  # mean + x * std
        return b.node("Add", [b.node("Mul", [x.name, b.const(const_in_layout(std, x.perm),
                                                               "std")]), mean_c])
    # (x - mean) / std, as Keras computes it (a division, not a multiply by 1/std)
    return b.node("Div", [b.node("Sub", [x.name, mean_c]),
                          b.const(const_in_layout(std, x.perm), "std")])


def _cubic():
    """Resize attributes of Keras's bicubic on this backend: Keys' cubic (a = -0.5) whose
    weights outside the image are dropped and the rest renormalized (TensorFlow, JAX:
    ONNX's exclude_outside), or torch's a = -0.75 with the edge pixels repeated."""
    torch = keras.backend.backend() == "torch"
    return dict(mode="cubic", coordinate_transformation_mode="half_pixel",
                cubic_coeff_a=-0.75 if torch else -0.5, exclude_outside=int(not torch))


RESIZE_MODES = {
    "bilinear": lambda: dict(mode="linear", coordinate_transformation_mode="half_pixel"),
    "nearest": lambda: dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                            nearest_mode="round_prefer_ceil"),
    "bicubic": _cubic,
}


def resize(b, x, size, interpolation, antialias=False, what="Resizing"):
    """Resize of an N, C, spatial... value to spatial `size` as Keras's image resize does
    (no aspect-ratio crop or pad). Antialiasing only changes a downscale: refused there."""
    lengths = [x.shape[p] for p in x.perm[2:]]
    shrinks = any(n is None or n > int(s) for n, s in zip(lengths, size))
    if interpolation == "bicubic" and keras.backend.backend() == "tensorflow":
        raise Unsupported(f"{what}(interpolation='bicubic') on TensorFlow: its kernel comes "
                          f"from a 1024-entry weight table, ~5e-4 of the scale away from "
                          f"ONNX's exact cubic (JAX and torch export it)")
    if interpolation not in RESIZE_MODES or (antialias and shrinks):
        raise Unsupported(f"{what}(interpolation={interpolation!r}"
                          f"{', antialias=True' if antialias else ''}): exact lowerings exist "
                          f"for {sorted(RESIZE_MODES)}, with antialias only when no side "
                          f"shrinks")
    # sizes = (N, C) of the input, then the target: exact, with any batch size
    batch_channels = b.node("Slice", [b.node("Shape", [x.name]), b.ints([0], "starts"),
                                      b.ints([2], "ends")])
    target = b.node("Concat", [batch_channels, b.ints([int(s) for s in size], "size")], axis=0)
    return b.node("Resize", [x.name, "", "", target], **RESIZE_MODES[interpolation]())


@lowering(L.Resizing, layout=CHANNELS_FIRST)
def lower_resizing(b, layer, ctx):
    if getattr(layer, "crop_to_aspect_ratio", False) or getattr(layer, "pad_to_aspect_ratio",
                                                                 False):
        raise Unsupported("Resizing with crop_to_aspect_ratio/pad_to_aspect_ratio")
    return resize(b, ctx.x, (layer.height, layer.width), layer.interpolation,
                  getattr(layer, "antialias", False))


@lowering(image_ops.Resize, layout=CHANNELS_FIRST)
def lower_resize_op(b, layer, ctx):
    if layer.crop_to_aspect_ratio or layer.pad_to_aspect_ratio:
        raise Unsupported("image.resize with crop_to_aspect_ratio/pad_to_aspect_ratio")
    if ctx.x.ndim != 4:
        raise Unsupported("image.resize of an unbatched image")
    return resize(b, ctx.x, layer.size, layer.interpolation, layer.antialias, "image.resize")


@lowering(L.CenterCrop, layout=CHANNELS_FIRST)
def lower_center_crop(b, layer, ctx):
    x = ctx.x
    h, w = (x.shape[p] for p in x.perm[2:4])
    if h is None or w is None or h < layer.height or w < layer.width:
        raise Unsupported("CenterCrop needs static spatial sizes at least the target size "
                          "(smaller inputs are resized by Keras)")
    top, left = (h - layer.height) // 2, (w - layer.width) // 2
    return b.node("Slice", [x.name, b.ints([top, left], "starts"),
                            b.ints([top + layer.height, left + layer.width], "ends"),
                            b.ints([2, 3], "axes")])

