"""Axis, shape and backend helpers the ops modules share: where the spatial and channel
axes are, static dims, slicing along one axis, and the argument checks of the windowed ops."""

import keras
import numpy as np
from keras import ops as kops

from keras_convx.utils import args as A


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


def _is_tensorflow():
    return keras.backend.backend() == "tensorflow"


def _via_channels_last(x, run):
    """TensorFlow's CPU kernels only take channels_last: transpose around `run`."""
    nd = len(x.shape)
    y = run(kops.transpose(x, [0] + list(range(2, nd)) + [1]))
    return kops.transpose(y, [0, nd - 1] + list(range(1, nd - 1)))


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
