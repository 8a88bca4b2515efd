"""Depthwise and separable convolutions, 1D/2D/3D (Keras has no 3D ones)."""

import keras
from keras import initializers

from keras_convx import constraints, regularizers
from keras_convx import ops as cops
from keras_convx.layers.base import WindowedLayer
from keras_convx.layers.int8 import Int8Mixin
from keras_convx.utils import args as A

register = keras.saving.register_keras_serializable(package="keras_convx")


class _DepthwiseKernelMixin:
    """The depthwise kernel `(*kernel_size, in, depth_multiplier)` and its arguments."""

    def _init_depthwise(self, depth_multiplier, initializer, regularizer, constraint):
        owner = self.__class__.__name__
        self.depth_multiplier = A.normalize_positive_int(depth_multiplier, "depth_multiplier", owner)
        self.depthwise_initializer = initializers.get(initializer)
        self.depthwise_regularizer = regularizers.get(regularizer)
        self.depthwise_constraint = constraints.get(constraint)

    def _depthwise_shape(self, in_channels):
        return self.kernel_size + (in_channels, self.depth_multiplier)

    def _depthwise_config(self):
        config = {"depth_multiplier": self.depth_multiplier}
        config.update(self._kernel_config("depthwise", self.depthwise_initializer,
                                          self.depthwise_regularizer, self.depthwise_constraint))
        return config


class BaseDepthwiseConv(Int8Mixin, _DepthwiseKernelMixin, WindowedLayer):
    """Abstract N-D depthwise convolution; `DepthwiseConv1D/2D/3D` only set `rank`.

    Each input channel is convolved with its own `depth_multiplier` filters;
    output channel `c * depth_multiplier + m` comes from input channel `c`.

    Args:
        kernel_size, strides, padding, data_format, dilation_rate, padding_mode:
            as in `keras_convx.layers.BaseConv` (causal and explicit padding included).
        depth_multiplier: filters per input channel.
        depthwise_initializer, depthwise_regularizer, depthwise_constraint: for
            the kernel (weight name `kernel`, shape `(*kernel_size, in, depth_multiplier)`).
        activation, use_bias, bias_*, activity_regularizer: as in Keras.

    Input shape:
        `(batch, *spatial, channels)` (channels_last) or `(batch, channels, *spatial)`.

    Output shape:
        Same layout with `channels * depth_multiplier` channels.
    """

    _int8_kernels = {"kernel": (-2, -1)}

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None,
                 bias_constraint=None, padding_mode="zeros", **kwargs):
        super().__init__(
            kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
            bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, bias_constraint=bias_constraint,
            padding_mode=padding_mode, **kwargs,
        )
        self._init_depthwise(depth_multiplier, depthwise_initializer,
                             depthwise_regularizer, depthwise_constraint)

    def output_channels(self, in_channels):
        return in_channels * self.depth_multiplier

    def build_kernels(self, in_channels):
        self.kernel = self._add_kernel(
            "kernel", self._depthwise_shape(in_channels), self.depthwise_initializer,
            self.depthwise_regularizer, self.depthwise_constraint, "depthwise",
        )

    def convolve(self, inputs):
        return cops.depthwise_conv(inputs, self._weight("kernel"), **self._window_kwargs())

    def layer_config(self):
        config = super().layer_config()
        config.update(self._depthwise_config())
        return config


class BaseSeparableConv(Int8Mixin, _DepthwiseKernelMixin, WindowedLayer):
    """Abstract N-D separable convolution: depthwise, then a pointwise (1x..x1) conv.

    Args:
        filters: output channels of the pointwise convolution.
        depth_multiplier: depthwise filters per input channel.
        depthwise_* / pointwise_*: initializer, regularizer and constraint for
            `depthwise_kernel` `(*kernel_size, in, depth_multiplier)` and
            `pointwise_kernel` `(1, ..., 1, in * depth_multiplier, filters)`.
        Other arguments as in `BaseDepthwiseConv`.
    """

    _int8_kernels = {"depthwise_kernel": (-2, -1), "pointwise_kernel": (-1,)}

    def __init__(self, filters, kernel_size, strides=1, padding="valid",
                 data_format=None, dilation_rate=1, depth_multiplier=1, activation=None,
                 use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None,
                 bias_constraint=None, padding_mode="zeros", **kwargs):
        super().__init__(
            kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
            bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, bias_constraint=bias_constraint,
            padding_mode=padding_mode, **kwargs,
        )
        self.filters = A.normalize_positive_int(filters, "filters", self.__class__.__name__)
        self._init_depthwise(depth_multiplier, depthwise_initializer,
                             depthwise_regularizer, depthwise_constraint)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.pointwise_constraint = constraints.get(pointwise_constraint)

    def output_channels(self, in_channels):
        return self.filters

    def build_kernels(self, in_channels):
        self.depthwise_kernel = self._add_kernel(
            "depthwise_kernel", self._depthwise_shape(in_channels),
            self.depthwise_initializer, self.depthwise_regularizer, self.depthwise_constraint,
            "depthwise",
        )
        self.pointwise_kernel = self._add_kernel(
            "pointwise_kernel", (1,) * self.rank + (in_channels * self.depth_multiplier, self.filters),
            self.pointwise_initializer, self.pointwise_regularizer, self.pointwise_constraint,
            "conv",
        )

    def convolve(self, inputs):
        return cops.separable_conv(inputs, self._weight("depthwise_kernel"),
                                   self._weight("pointwise_kernel"),
                                   **self._window_kwargs())

    def layer_config(self):
        config = super().layer_config()
        config["filters"] = self.filters
        config.update(self._depthwise_config())
        config.update(self._kernel_config("pointwise", self.pointwise_initializer,
                                          self.pointwise_regularizer, self.pointwise_constraint))
        return config


@register
class DepthwiseConv1D(BaseDepthwiseConv):
    """1D depthwise convolution; `padding="causal"` is allowed (Keras 3 refuses it)."""

    rank = 1


@register
class DepthwiseConv2D(BaseDepthwiseConv):
    """2D depthwise convolution (MobileNet); drop-in for `keras.layers.DepthwiseConv2D`."""

    rank = 2


@register
class DepthwiseConv3D(BaseDepthwiseConv):
    """3D depthwise convolution for volumes and video (not in Keras)."""

    rank = 3


@register
class SeparableConv1D(BaseSeparableConv):
    """1D separable convolution; `padding="causal"` is allowed."""

    rank = 1


@register
class SeparableConv2D(BaseSeparableConv):
    """2D separable convolution (Xception); drop-in for `keras.layers.SeparableConv2D`."""

    rank = 2


@register
class SeparableConv3D(BaseSeparableConv):
    """3D separable convolution (the MobileNet-3D family; not in Keras)."""

    rank = 3


SeparableConvolution1D = SeparableConv1D
SeparableConvolution2D = SeparableConv2D
SeparableConvolution3D = SeparableConv3D
