"""Functional core of keras_convx, written on backend-agnostic `keras.ops`.

The layers call these functions and users can too. They run unchanged on the
TensorFlow, JAX and PyTorch backends. Spatial arguments (`strides`, `pads`,
...) always refer to the spatial axes only, whatever the `data_format`.
"""

import keras
import numpy as np
from keras import ops as kops

from keras_convx.utils import args as A
from keras_convx.utils import shapes as S


def _spatial_axes(ndim, data_format):
    return list(range(1, ndim - 1)) if data_format == "channels_last" else list(range(2, ndim))


def _channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def _static_shape(x):
    """The static dims of `x`, None where unknown: a symbolic dim (JAX's shape-polymorphic
    batch while Keras infers a composite layer's output spec) is unknown too, not an int."""
    return tuple(int(d) if isinstance(d, (int, np.integer)) else None for d in x.shape)


def _take(x, axis, start, stop, step=None):
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop, step)
    return x[tuple(index)]


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


def _is_tensorflow():
    return keras.backend.backend() == "tensorflow"


def _via_channels_last(x, run):
    """TensorFlow's CPU kernels only take channels_last: transpose around `run`."""
    nd = len(x.shape)
    y = run(kops.transpose(x, [0] + list(range(2, nd)) + [1]))
    return kops.transpose(y, [0, nd - 1] + list(range(1, nd - 1)))


def _windowed(x, op, kernel_size, strides, padding, dilation_rate, padding_mode, data_format, owner):
    """Runs a stride/dilation window op with any padding and padding mode.

    `op(x, strides, padding)` is the backend op ('valid' or 'same' padding).
    Padding that the backend can't do is applied explicitly first; strides > 1
    with dilation > 1 on TensorFlow (which refuses it) becomes a dilated
    stride-1 op followed by subsampling.
    """
    axes = _spatial_axes(len(x.shape), data_format)
    lengths = [_static_shape(x)[a] for a in axes]
    split_strides = _is_tensorflow() and max(strides) > 1 and max(dilation_rate) > 1
    if padding == "same" and padding_mode == "zeros" and not split_strides:
        return op(x, strides, "same")
    if padding != "valid":
        pads = S.resolve_pads(padding, lengths, kernel_size, strides, dilation_rate)
        if any(p is None for p in pads):
            raise ValueError(
                f"{owner}: padding={padding!r} with padding_mode={padding_mode!r} and "
                f"strides={tuple(strides)} needs known spatial sizes, got "
                f"{tuple(x.shape)}"
            )
        x = pad(x, pads, mode=padding_mode, data_format=data_format)
    if not split_strides:
        return op(x, strides, "valid")
    y = op(x, (1,) * len(strides), "valid")
    for axis, s in zip(axes, strides):
        if s > 1:
            y = _take(y, axis, None, None, s)
    return y


def _effective_dilation(kernel_size, dilation_rate):
    """Dilation is meaningless along a size-1 kernel axis; 1 keeps backends' buffers small."""
    return tuple(1 if k == 1 else d for k, d in zip(kernel_size, dilation_rate))


def _prepare(owner, x, rank_kernel, strides, padding, dilation_rate, padding_mode,
             data_format, allow_causal=True):
    rank = len(x.shape) - 2
    if rank < 1:
        raise ValueError(f"{owner}: x must have rank >= 3, got shape {tuple(x.shape)}")
    if rank_kernel != rank:
        raise ValueError(
            f"{owner}: kernel has {rank_kernel} spatial axes but x has {rank}, "
            f"x shape {tuple(x.shape)}"
        )
    return (
        A.normalize_tuple(strides, rank, "strides", owner),
        A.normalize_padding(padding, rank, owner, allow_causal=allow_causal),
        A.normalize_tuple(dilation_rate, rank, "dilation_rate", owner),
        A.normalize_padding_mode(padding_mode, owner),
        A.normalize_data_format(data_format, owner),
    )


def conv(x, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1,
         groups=None, padding_mode="zeros"):
    """N-D convolution (cross-correlation) with explicit padding and padding modes.

    Args:
        x: tensor `(batch, *spatial, in)` (channels_last) or `(batch, in, *spatial)`.
        kernel: tensor `(*kernel_size, in // groups, filters)` (Keras layout).
        strides: int or tuple per spatial axis.
        padding: `"valid"`, `"same"`, `"causal"` (causal along the first spatial
            axis, same on the others), an int, a tuple per axis, or (before,
            after) pairs per axis.
        data_format: `"channels_last"` or `"channels_first"`.
        dilation_rate: int or tuple per spatial axis; may be combined with strides > 1.
        groups: optional; inferred from `in // kernel.shape[-2]` and checked if given.
        padding_mode: `"zeros"`, `"reflect"`, `"symmetric"`, `"replicate"` or `"circular"`.

    Returns:
        The convolution output, `(batch, *out_spatial, filters)` for channels_last.
    """
    owner = "conv"
    kshape = _static_shape(kernel)
    strides, padding, dilation_rate, padding_mode, data_format = _prepare(
        owner, x, len(kshape) - 2, strides, padding, dilation_rate, padding_mode, data_format
    )
    dilation_rate = _effective_dilation(kshape[:-2], dilation_rate)
    channels = _static_shape(x)[_channel_axis(data_format)]
    if channels is None:
        raise ValueError(f"{owner}: the channel dim of x must be known, got {tuple(x.shape)}")
    if channels % kshape[-2]:
        raise ValueError(
            f"{owner}: input channels ({channels}) must be a multiple of the kernel's "
            f"input channels ({kshape[-2]}), kernel shape {kshape}"
        )
    inferred = channels // kshape[-2]
    if groups is not None and groups != inferred:
        raise ValueError(
            f"{owner}: groups={groups} does not match input channels {channels} and "
            f"kernel shape {kshape} (which imply groups={inferred})"
        )
    A.check_divisible(kshape[-1], inferred, "filters", owner)
    if data_format == "channels_first" and _is_tensorflow():
        return _via_channels_last(x, lambda y: conv(
            y, kernel, strides, padding, "channels_last", dilation_rate, groups, padding_mode))

    def op(y, s, p):
        return _guarded_conv(y, kernel, s, p, data_format, dilation_rate)

    return _windowed(x, op, kshape[:-2], strides, padding, dilation_rate, padding_mode,
                     data_format, owner)


# Backends whose CPU conv kernels return garbage (uninitialised memory, up to 1e35) for one
# input channel when the last spatial axis is strided and its output has length 1:
# TensorFlow 2.21 with oneDNN, torch 2.13 on channels-last strides (benchmarks/
# kernel_sweep.py, RESULTS.md section 17). Two input channels are exact everywhere.
_ONE_CHANNEL_BUG = ("tensorflow", "torch")


def _guarded_conv(x, kernel, strides, padding, data_format, dilation_rate):
    """`keras.ops.conv`, routed around the one-channel kernel bug: an axis whose output has
    length 1 is convolved at stride 1 over exactly its window (a slice, free); where that
    length is unknown, or 'same' padding makes it 1, a zero second channel (exact: 0 * 0)."""
    shape = _static_shape(x)
    if (keras.backend.backend() not in _ONE_CHANNEL_BUG or max(strides) == 1
            or shape[_channel_axis(data_format)] != 1):
        return kops.conv(x, kernel, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate)
    axes = _spatial_axes(len(shape), data_format)
    kernel_size = _static_shape(kernel)[:-2]
    strides, risky = list(strides), False
    for i, axis in enumerate(axes):
        extent = (kernel_size[i] - 1) * dilation_rate[i] + 1
        length = shape[axis]
        if strides[i] == 1:
            continue
        if length is None:
            risky = True
        elif padding == "valid" and (length - extent) // strides[i] == 0:
            x, strides[i] = _take(x, axis, 0, extent), 1  # one window: stride is moot
        elif padding == "same" and -(-length // strides[i]) == 1:
            risky = True
    if risky:
        x = kops.concatenate([x, kops.zeros_like(x)], axis=_channel_axis(data_format))
        kernel = kops.concatenate([kernel, kops.zeros_like(kernel)], axis=-2)
    return kops.conv(x, kernel, strides=tuple(strides), padding=padding,
                     data_format=data_format, dilation_rate=dilation_rate)


def depthwise_conv(x, kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1, padding_mode="zeros"):
    """Depthwise N-D convolution: each input channel gets `depth_multiplier` filters.

    Args:
        x: tensor `(batch, *spatial, in)` or channels_first.
        kernel: tensor `(*kernel_size, in, depth_multiplier)`; output channel
            `c * depth_multiplier + m` is input channel `c` with filter `m`.
        strides, padding, data_format, dilation_rate, padding_mode: as in `conv`.

    Returns:
        Tensor with `in * depth_multiplier` channels.
    """
    owner = "depthwise_conv"
    kshape = _static_shape(kernel)
    strides, padding, dilation_rate, padding_mode, data_format = _prepare(
        owner, x, len(kshape) - 2, strides, padding, dilation_rate, padding_mode, data_format
    )
    dilation_rate = _effective_dilation(kshape[:-2], dilation_rate)
    channels = _static_shape(x)[_channel_axis(data_format)]
    if channels != kshape[-2]:
        raise ValueError(
            f"{owner}: input channels ({channels}) must equal the kernel's input "
            f"channels, kernel shape {kshape}"
        )
    if data_format == "channels_first" and _is_tensorflow():
        return _via_channels_last(x, lambda y: depthwise_conv(
            y, kernel, strides, padding, "channels_last", dilation_rate, padding_mode))
    rank = len(kshape) - 2
    # No backend has a 3-D depthwise op, and TensorFlow's 2-D one needs equal strides:
    # there a grouped conv with groups = channels is the same computation (the
    # (in, mult) -> in*mult channel order matches).
    grouped = kops.reshape(kernel, kshape[:-2] + (1, kshape[-2] * kshape[-1]))

    def op(y, s, p):
        if channels == 1:  # a plain conv, routed around the one-channel kernel bug
            return _guarded_conv(y, grouped, s, p, data_format, dilation_rate)
        if rank == 3 or (_is_tensorflow() and rank == 2 and s[0] != s[1]):
            return kops.conv(y, grouped, strides=s, padding=p, data_format=data_format,
                             dilation_rate=dilation_rate)
        return kops.depthwise_conv(y, kernel, strides=s, padding=p, data_format=data_format,
                                   dilation_rate=dilation_rate)

    return _windowed(x, op, kshape[:-2], strides, padding, dilation_rate, padding_mode,
                     data_format, owner)


def separable_conv(x, depthwise_kernel, pointwise_kernel, strides=1, padding="valid",
                   data_format=None, dilation_rate=1, padding_mode="zeros"):
    """Depthwise convolution followed by a pointwise (1x..x1) convolution.

    Args:
        depthwise_kernel: `(*kernel_size, in, depth_multiplier)`.
        pointwise_kernel: `(1, ..., 1, in * depth_multiplier, filters)`.
        Other arguments as in `depthwise_conv`.
    """
    y = depthwise_conv(x, depthwise_kernel, strides=strides, padding=padding,
                       data_format=data_format, dilation_rate=dilation_rate,
                       padding_mode=padding_mode)
    return conv(y, pointwise_kernel, data_format=data_format)


def conv_transpose(x, kernel, strides=1, padding="valid", output_padding=None,
                   data_format=None, dilation_rate=1, groups=1, output_size=None):
    """N-D transposed convolution (the gradient of `conv` w.r.t. its input).

    Args:
        x: tensor `(batch, *spatial, in)` or channels_first.
        kernel: tensor `(*kernel_size, filters // groups, in)` (Keras layout).
        strides: int or tuple per spatial axis.
        padding: `"valid"` or `"same"` (Keras/TensorFlow semantics), or an int,
            tuple or (before, after) pairs: that many positions cropped from each
            side of the full output (PyTorch's `padding`).
        output_padding: int or tuple; extra positions at the end of each axis,
            each smaller than max(stride, dilation).
        dilation_rate: int or tuple; may be combined with strides > 1.
        groups: number of channel groups (as `torch.nn.ConvTranspose*d`).
        output_size: optional spatial size to produce when strides make it
            ambiguous; must lie in the range the arithmetic allows.

    Returns:
        Tensor with `filters` channels.
    """
    owner = "conv_transpose"
    kshape = _static_shape(kernel)
    rank = len(kshape) - 2
    strides, padding, dilation_rate, _, data_format = _prepare(
        owner, x, rank, strides, padding, dilation_rate, "zeros", data_format,
        allow_causal=False,
    )
    groups = A.normalize_positive_int(groups, "groups", owner)
    if output_padding is not None:  # against the dilation asked for, as PyTorch checks it
        output_padding = A.normalize_tuple(output_padding, rank, "output_padding", owner, 0)
        for op_, s, d in zip(output_padding, strides, dilation_rate):
            if op_ >= max(s, d):
                raise ValueError(
                    f"{owner}: output_padding must be smaller than max(strides, "
                    f"dilation_rate) per axis, got output_padding={output_padding}, "
                    f"strides={strides}, dilation_rate={dilation_rate}"
                )
    asked_dilation = dilation_rate
    dilation_rate = _effective_dilation(kshape[:-2], dilation_rate)
    channels = _static_shape(x)[_channel_axis(data_format)]
    if channels != kshape[-1]:
        raise ValueError(
            f"{owner}: input channels ({channels}) must equal kernel.shape[-1], "
            f"kernel shape {kshape}"
        )
    A.check_divisible(channels, groups, "input channels", owner)
    if data_format == "channels_first" and _is_tensorflow():
        return _via_channels_last(x, lambda y: conv_transpose(
            y, kernel, strides, padding, output_padding, "channels_last", asked_dilation,
            groups, output_size))
    axes = _spatial_axes(len(x.shape), data_format)
    lengths = [_static_shape(x)[a] for a in axes]
    crops = transpose_crops(owner, lengths, kshape[:-2], strides, dilation_rate, padding,
                            output_padding, output_size)
    # TensorFlow's CPU transposed conv has no dilation; no backend op has groups.
    native = groups == 1 and not (_is_tensorflow() and max(dilation_rate) > 1)
    if native and _backend_transpose_matches(padding, output_padding, output_size, strides,
                                             dilation_rate):
        # The backend's own 'valid'/'same' arithmetic is ours here (TensorFlow's), so let it
        # size the output: no crop after the op (a crop costs a copy, and more backward).
        return kops.conv_transpose(x, kernel, strides=strides, padding=padding,
                                   output_padding=output_padding, data_format=data_format,
                                   dilation_rate=dilation_rate)
    if native:
        y = kops.conv_transpose(x, kernel, strides=strides, padding="valid",
                                output_padding=0, data_format=data_format,
                                dilation_rate=dilation_rate)
    else:
        y = _conv_transpose_as_conv(x, kernel, strides, dilation_rate, groups, axes,
                                    data_format)
    for axis, (before, after) in zip(axes, crops):
        if before or after > 0:
            y = _take(y, axis, before, -after if after > 0 else None)
    extend = [(0, max(-after, 0)) for _, after in crops]
    if any(e for _, e in extend):
        y = pad(y, extend, data_format=data_format)
    return y


def _backend_transpose_matches(padding, output_padding, output_size, strides, dilation_rate):
    """Where keras.ops.conv_transpose's own padding equals keras_convx's semantics."""
    if not isinstance(padding, str) or output_size is not None:
        return False
    if max(strides) > 1 and max(dilation_rate) > 1:
        return False
    # backends want output_padding < stride; a size-1 kernel axis lost its dilation
    if output_padding is not None and any(p >= s for p, s in zip(output_padding, strides)):
        return False
    # Keras's torch backend can't express 'same' with an output_padding (its docstring says so).
    return not (keras.backend.backend() == "torch" and padding == "same"
                and output_padding is not None)


def transpose_crops(owner, lengths, kernel_size, strides, dilation_rate, padding,
                    output_padding=None, output_size=None):
    """Per-axis (before, after) crops of the full transposed output; checks `output_size`."""
    rank = len(kernel_size)
    per_axis = [S.axis_padding(padding, i) for i in range(rank)]
    if output_size is None:
        return [S.transpose_crop(k, s, d, p, op)
                for k, s, d, p, op in zip(kernel_size, strides, dilation_rate, per_axis,
                                          output_padding or (None,) * rank)]
    size = A.normalize_tuple(output_size, rank, "output_size", owner)
    crops = []
    for n, k, s, d, p, want in zip(lengths, kernel_size, strides, dilation_rate, per_axis, size):
        if n is None:
            raise ValueError(f"{owner}: output_size needs known input spatial sizes, got {lengths}")
        low, high = S.transpose_length_range(n, k, s, d, p)
        if not low <= want <= high:
            raise ValueError(
                f"{owner}: output_size {size} is not reachable from input size "
                f"{tuple(lengths)} with kernel_size={tuple(kernel_size)}, strides="
                f"{tuple(strides)}, padding={A.padding_to_config(padding)!r}: each size "
                f"must be in [{low}, {high}] along that axis"
            )
        delta = want - S.transpose_full_length(n, k, s, d)
        crops.append(S.transpose_crop(k, s, d, p, delta=delta))
    return crops


def _conv_transpose_as_conv(x, kernel, strides, dilation_rate, groups, axes, data_format):
    """Full transposed conv as a forward conv: zero-insert, pad k-1, flipped kernel.

    Used where the backend op can't do it (groups, or dilation on TensorFlow).
    """
    kshape = _static_shape(kernel)
    rank = len(kshape) - 2
    out_g, cin = kshape[-2], kshape[-1]
    for axis, s in zip(axes, strides):
        if s > 1:
            x = _zero_insert(x, axis, s)
    pads = [((k - 1) * d, (k - 1) * d) for k, d in zip(kshape[:-2], dilation_rate)]
    x = pad(x, pads, data_format=data_format)
    # (k..., out/g, g*in/g) -> (k..., in/g, g*out/g): the forward kernel of each group.
    w = kops.reshape(kernel, kshape[:-2] + (out_g, groups, cin // groups))
    perm = list(range(rank)) + [rank + 2, rank + 1, rank]
    w = kops.transpose(w, perm)
    w = kops.reshape(w, kshape[:-2] + (cin // groups, groups * out_g))
    w = kops.flip(w, axis=tuple(range(rank)))
    return kops.conv(x, w, strides=1, padding="valid", data_format=data_format,
                     dilation_rate=dilation_rate)


def _zero_insert(x, axis, stride):
    """Puts stride-1 zeros between consecutive entries along `axis`."""
    shape = list(kops.shape(x))
    y = kops.expand_dims(x, axis + 1)
    zeros_shape = list(shape)
    zeros_shape.insert(axis + 1, stride - 1)
    y = kops.concatenate([y, kops.zeros(zeros_shape, dtype=x.dtype)], axis=axis + 1)
    length = shape[axis]
    new_shape = shape[:axis] + [length * stride] + shape[axis + 1:]
    y = kops.reshape(y, new_shape)
    return _take(y, axis, 0, (length - 1) * stride + 1)


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
    import numpy as np

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
    import numpy as np

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
