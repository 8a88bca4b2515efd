"""Padding and cropping of the spatial axes: `pad` (every padding mode, natively where a
backend's `keras.ops.pad` matches numpy, else by slicing) and `crop`."""

import keras
from keras import ops as kops

from keras_convx.ops.common import _spatial_axes, _take
from keras_convx.utils import args as A


def _normalize_pads(pads, rank, owner):
    return A.normalize_pairs(pads, rank, "pads", owner)


def pad(x, pads, mode="constant", constant_value=0.0, data_format=None):
    """Pads the spatial axes of a batched tensor.

    Args:
        x: tensor of shape `(batch, *spatial, channels)` or `(batch, channels, *spatial)`.
        pads: int, tuple of ints per spatial axis, or (before, after) pairs per axis.
        mode: one of `"constant"`/`"zeros"` (fill with `constant_value`, zeros for
            `"zeros"`), `"reflect"` (mirror without the edge, numpy's reflect),
            `"symmetric"` (mirror with the edge), `"replicate"` (repeat the edge,
            numpy's edge) or `"circular"` (wrap around, numpy's wrap).
        constant_value: fill value for `"constant"` mode.
        data_format: `"channels_last"` or `"channels_first"`.

    Returns:
        The padded tensor.
    """
    owner = "pad"
    mode = A.normalize_padding_mode(mode, owner, A.PAD_MODES, name="mode")
    data_format = A.normalize_data_format(data_format, owner)
    ndim = len(x.shape)
    if ndim < 3:
        raise ValueError(
            f"{owner}: x must have a batch, a channel and at least one spatial axis, "
            f"got shape {tuple(x.shape)}"
        )
    axes = _spatial_axes(ndim, data_format)
    pads = _normalize_pads(pads, len(axes), owner)
    if not any(b or a for b, a in pads):
        return x
    width = [(0, 0)] * ndim
    for axis, p in zip(axes, pads):
        width[axis] = p
    if mode in ("constant", "zeros"):
        value = 0.0 if mode == "zeros" else constant_value
        return kops.pad(x, width, mode="constant", constant_values=value)
    native = _NATIVE_PAD_MODES.get(keras.backend.backend(), {}).get(mode)
    if native:
        for axis, pair in zip(axes, pads):
            check_pad_fits(mode, pair, x.shape[axis], owner)
        return kops.pad(x, width, mode=native)
    for axis, (before, after) in zip(axes, pads):
        if before or after:
            x = _pad_axis(x, axis, before, after, mode, owner)
    return x


# Backends whose keras.ops.pad implements a mode exactly as numpy does (Keras's torch
# backend maps 'symmetric' to 'replicate', so torch uses the slicing implementation).
_NATIVE_PAD_MODES = {
    "tensorflow": {"reflect": "reflect", "symmetric": "symmetric"},
    "jax": {"reflect": "reflect", "symmetric": "symmetric", "replicate": "edge",
            "circular": "wrap"},
}


def check_pad_fits(mode, pads, length, owner):
    """Reflect pads must be < the axis length; symmetric and circular pads <= it."""
    limit = {"reflect": 1, "symmetric": 0, "circular": 0}.get(mode)
    if length is not None and limit is not None and max(pads) > length - limit:
        relation = "smaller than" if limit else "at most"
        raise ValueError(
            f"{owner}: '{mode}' padding {tuple(pads)} must be {relation} the input "
            f"length {length} along each padded axis"
        )


def _pad_axis(x, axis, before, after, mode, owner):
    check_pad_fits(mode, (before, after), x.shape[axis], owner)
    pieces = []
    if mode == "reflect":
        if before:
            pieces.append(kops.flip(_take(x, axis, 1, before + 1), axis=axis))
        pieces.append(x)
        if after:
            pieces.append(kops.flip(_take(x, axis, -after - 1, -1), axis=axis))
    elif mode == "symmetric":
        if before:
            pieces.append(kops.flip(_take(x, axis, 0, before), axis=axis))
        pieces.append(x)
        if after:
            pieces.append(kops.flip(_take(x, axis, -after, None), axis=axis))
    elif mode == "replicate":
        if before:
            pieces.append(kops.repeat(_take(x, axis, 0, 1), before, axis=axis))
        pieces.append(x)
        if after:
            pieces.append(kops.repeat(_take(x, axis, -1, None), after, axis=axis))
    else:  # circular
        if before:
            pieces.append(_take(x, axis, -before, None))
        pieces.append(x)
        if after:
            pieces.append(_take(x, axis, 0, after))
    return kops.concatenate(pieces, axis=axis)


def crop(x, crops, data_format=None):
    """Removes (before, after) positions from each spatial axis.

    Args:
        x: tensor `(batch, *spatial, channels)` or channels_first.
        crops: int, tuple per axis, or (before, after) pairs per axis (non-negative).
        data_format: `"channels_last"` or `"channels_first"`.
    """
    owner = "crop"
    data_format = A.normalize_data_format(data_format, owner)
    axes = _spatial_axes(len(x.shape), data_format)
    crops = A.normalize_pairs(crops, len(axes), "crops", owner)
    for axis, (before, after) in zip(axes, crops):
        length = x.shape[axis]
        if length is not None and before + after >= length:
            raise ValueError(
                f"{owner}: crops {crops} remove all of length {length} on axis {axis}"
            )
        if before or after:
            x = _take(x, axis, before, -after if after else None)
    return x
