"""Forward convolutions: `conv`, `depthwise_conv` and `separable_conv`, with any padding,
padding mode and strides combined with dilation, on every backend (routed around the
backends' CPU kernel bugs)."""

import keras
from keras import ops as kops

from keras_convx.ops.common import (
    _channel_axis, _effective_dilation, _is_tensorflow, _prepare, _spatial_axes, _static_shape,
    _take, _via_channels_last,
)
from keras_convx.ops.padding import pad
from keras_convx.utils import args as A
from keras_convx.utils import shapes as S


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
