"""Transposed convolution: `conv_transpose` (groups, dilation with strides, PyTorch-style
integer padding and `output_size`) and `transpose_crops`, the crops of its full output."""

import keras
from keras import ops as kops

from keras_convx.ops.common import (
    _channel_axis, _effective_dilation, _is_tensorflow, _prepare, _spatial_axes, _static_shape,
    _take, _via_channels_last,
)
from keras_convx.ops.padding import pad
from keras_convx.utils import args as A
from keras_convx.utils import shapes as S


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
