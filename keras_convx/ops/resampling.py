"""Resizing of the spatial axes: `resize` (nearest, linear, cubic and Lanczos, any scale)
and `resize_taps`, its source indices and weights along one axis."""

import numpy as np
from keras import ops as kops

from keras_convx.ops.common import _spatial_axes
from keras_convx.utils import args as A
from keras_convx.utils import shapes as S


INTERPOLATIONS = ("nearest", "linear", "bilinear", "trilinear", "bicubic", "lanczos3",
                  "lanczos5")
_CUBIC_A = -0.75  # PyTorch's and ONNX Resize's default cubic coefficient


def resize_taps(length, scale, interpolation, align_corners, exclude_outside=False):
    """Integer source indices and float64 weights, one pair per tap, along one axis.

    The output length is floor(length * scale). Coordinates follow PyTorch's
    `interpolate(scale_factor=...)` and ONNX Resize: half-pixel centres
    (`align_corners=False`) or corner-aligned; linear clamps negative source
    coordinates to 0; cubic uses a = -0.75 with edge-clamped taps, or with
    `exclude_outside` (ONNX Resize's attribute) taps outside the input weighted 0 and the
    others renormalized to sum 1.
    """
    out = S.resize_output_length(length, scale)
    i = np.arange(out, dtype=np.float64)
    if interpolation.startswith("lanczos"):
        return _lanczos_taps(length, out, int(interpolation[-1]))
    if interpolation == "nearest":
        src = np.minimum(np.floor(i / scale), length - 1).astype(np.int64)
        return [(src, np.ones(out))]
    if align_corners:
        src = i * ((length - 1) / (out - 1)) if out > 1 else np.zeros(out)
    else:
        src = (i + 0.5) / scale - 0.5
    if interpolation != "bicubic":
        src = np.maximum(src, 0.0)
        i0 = np.floor(src)
        w = src - i0
        i0 = np.minimum(i0.astype(np.int64), length - 1)
        return [(i0, 1.0 - w), (np.minimum(i0 + 1, length - 1), w)]
    i0 = np.floor(src)
    t = src - i0
    a = _CUBIC_A
    weights = [
        ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
        ((a + 2) * t - (a + 3)) * t * t + 1,
        ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
        ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a,
    ]
    index = [i0.astype(np.int64) + k for k in (-1, 0, 1, 2)]
    if exclude_outside:
        weights = [np.where((j >= 0) & (j < length), w, 0.0) for j, w in zip(index, weights)]
        total = np.sum(weights, axis=0)
        weights = [w / total for w in weights]
    return [(np.clip(j, 0, length - 1), w) for j, w in zip(index, weights)]


def _lanczos_taps(length, out, radius):
    """Lanczos taps as `keras.ops.image.resize` (JAX's scale_and_translate, TF's
    `tf.image.resize`) computes them for a resize to `out`: half-pixel centres at the
    scale out / length, the windowed sinc over the taps inside the input, normalized to
    sum 1 (no antialiasing, as Keras's default)."""
    src = (np.arange(out, dtype=np.float64) + 0.5) * (length / out) - 0.5
    base = np.floor(src).astype(np.int64)
    index = [base + k for k in range(-radius + 1, radius + 1)]
    weights = []
    for j in index:
        d = np.abs(src - j)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(d < 1e-12, 1.0, radius * np.sin(np.pi * d) * np.sin(np.pi * d / radius)
                         / (np.pi ** 2 * d * d))
        weights.append(np.where((d < radius) & (j >= 0) & (j < length), w, 0.0))
    total = np.sum(weights, axis=0)
    # JAX's guard: a (near) zero total gives zero weights rather than a blow-up
    ok = np.abs(total) > 1000 * np.finfo(np.float32).eps
    return [(np.clip(j, 0, length - 1), np.where(ok, w / np.where(ok, total, 1.0), 0.0))
            for j, w in zip(index, weights)]


def resize(x, scale, interpolation="nearest", align_corners=False, data_format=None,
           exclude_outside=False):
    """Up- or down-samples the spatial axes by `scale` (output floor(L * scale)).

    Args:
        x: tensor `(batch, *spatial, channels)` or channels_first.
        scale: positive number or tuple per spatial axis (non-integers allowed).
        interpolation: `"nearest"`, `"linear"`/`"bilinear"`/`"trilinear"`
            (separable linear on every axis), `"bicubic"` (a = -0.75), or
            `"lanczos3"`/`"lanczos5"` (as `keras.ops.image.resize` to the output size).
        align_corners: False for half-pixel centres (Keras's default), True for
            PyTorch's `align_corners=True`.
        data_format: `"channels_last"` or `"channels_first"`.
        exclude_outside: with `"bicubic"`, taps outside the input get weight 0 and the
            others are renormalized (ONNX Resize's `exclude_outside=1`); edge-clamped
            otherwise.
    """
    owner = "resize"
    data_format = A.normalize_data_format(data_format, owner)
    axes = _spatial_axes(len(x.shape), data_format)
    scale = A.normalize_scale(scale, len(axes), owner, name="scale")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"{owner}: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}"
        )
    if align_corners and interpolation.startswith("lanczos"):
        raise ValueError(f"{owner}: align_corners applies to linear and cubic interpolation, "
                         f"not {interpolation!r}")
    if exclude_outside and interpolation != "bicubic":
        raise ValueError(f"{owner}: exclude_outside applies to 'bicubic' only, got "
                         f"interpolation={interpolation!r}")
    if (len(axes) == 2 and interpolation == "bilinear" and not align_corners
            and all(isinstance(s, int) for s in scale) and None not in
            [x.shape[a] for a in axes]):
        # Integer half-pixel bilinear up-sampling is exactly the backend's image resize.
        size = tuple(int(x.shape[a]) * s for a, s in zip(axes, scale))
        return kops.image.resize(x, size, interpolation="bilinear", antialias=False,
                                 data_format=data_format)
    for axis, s in zip(axes, scale):
        if interpolation == "nearest" and isinstance(s, int):
            if s > 1:
                x = kops.repeat(x, s, axis=axis)
            continue
        length = x.shape[axis]
        if length is None:
            raise ValueError(
                f"{owner}: {interpolation!r} resizing needs known spatial sizes, got "
                f"{tuple(x.shape)}"
            )
        taps = resize_taps(int(length), s, interpolation, align_corners, exclude_outside)
        shape = [1] * len(x.shape)
        shape[axis] = -1
        y = None
        for index, weight in taps:
            term = kops.take(x, kops.convert_to_tensor(index, "int32"), axis=axis)
            if interpolation != "nearest":
                term = term * kops.reshape(kops.convert_to_tensor(weight, x.dtype), shape)
            y = term if y is None else y + term
        x = y
    return x
