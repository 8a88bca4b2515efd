"""Transposed convolutions 1D/2D/3D, with groups, explicit padding and output_size."""

import inspect

import keras
from keras import initializers

from keras_convx import constraints, regularizers
from keras_convx import ops as cops
from keras_convx.layers.base import WindowedLayer
from keras_convx.layers.int8 import Int8Mixin
from keras_convx.utils import args as A
from keras_convx.utils import shapes as S

register = keras.saving.register_keras_serializable(package="keras_convx")


class BaseConvTranspose(Int8Mixin, WindowedLayer):
    """Abstract N-D transposed convolution; `Conv1DTranspose/2D/3D` only set `rank`.

    Args:
        filters: number of output channels.
        kernel_size, strides, dilation_rate: int or tuple of `rank` ints;
            strides > 1 may be combined with dilation > 1.
        padding: `"valid"` or `"same"` (Keras semantics: `L*s` for same), or an
            int, tuple or (before, after) pairs cropped from the full output
            (PyTorch's `padding`).
        output_padding: int or tuple, extra size at the end of each axis; each
            must be smaller than max(stride, dilation).
        groups: channel groups (as `torch.nn.ConvTranspose2d`); kernel shape is
            `(*kernel_size, filters // groups, in)`.
        output_size: optional spatial size picked among those the strides allow
            (TensorFlow 1's `get_deconv_dim` range); can also be given per call.
        Other arguments as in `keras.layers.Conv2DTranspose`.

    Input shape:
        `(batch, *spatial, channels)` (channels_last) or `(batch, channels, *spatial)`.

    Output shape:
        `(batch, *new_spatial, filters)`; valid: `(L-1)*s + max(k_d, s)`,
        same: `L*s`, explicit: `(L-1)*s + k_d - before - after + output_padding`.
    """

    _allow_causal = False
    _supports_padding_mode = False
    _extensions = {**WindowedLayer._extensions, "groups": 1, "output_size": None}
    _int8_kernels = {"kernel": (-2,)}

    def __init__(self, filters, kernel_size, strides=1, padding="valid",
                 output_padding=None, data_format=None, dilation_rate=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, groups=1, output_size=None,
                 **kwargs):
        super().__init__(
            kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
            bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, bias_constraint=bias_constraint,
            **kwargs,
        )
        owner, rank = self.__class__.__name__, self.rank
        self.filters = A.normalize_positive_int(filters, "filters", owner)
        self.groups = A.normalize_positive_int(groups, "groups", owner)
        A.check_divisible(self.filters, self.groups, "filters", owner)
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = A.normalize_tuple(output_padding, rank, "output_padding", owner, 0)
            for op, s, d in zip(self.output_padding, self.strides, self.dilation_rate):
                if op >= max(s, d):
                    raise ValueError(
                        f"{owner}: output_padding must be smaller than max(strides, "
                        f"dilation_rate) on each axis, got output_padding="
                        f"{self.output_padding}, strides={self.strides}, "
                        f"dilation_rate={self.dilation_rate}"
                    )
        self.output_size = None
        if output_size is not None:
            self.output_size = A.normalize_tuple(output_size, rank, "output_size", owner)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)

    def output_channels(self, in_channels):
        return self.filters

    def output_spatial(self, lengths, output_size=None):
        size = output_size or self.output_size
        if size is not None:
            if any(n is None for n in lengths):
                return list(A.normalize_tuple(size, self.rank, "output_size",
                                              self.__class__.__name__))
            # Validates that the size is reachable (raises otherwise).
            cops.transpose_crops(self.__class__.__name__, lengths, self.kernel_size,
                                 self.strides, self.dilation_rate, self.padding,
                                 self.output_padding, size)
            return list(A.normalize_tuple(size, self.rank, "output_size", self.__class__.__name__))
        crops = cops.transpose_crops(self.__class__.__name__, lengths, self.kernel_size,
                                     self.strides, self.dilation_rate, self.padding,
                                     self.output_padding)
        return [None if n is None else S.transpose_full_length(n, k, s, d) - b - a
                for n, k, s, d, (b, a) in zip(lengths, self.kernel_size, self.strides,
                                              self.dilation_rate, crops)]

    def compute_output_shape(self, input_shape, output_size=None):
        if output_size is None:
            return super().compute_output_shape(input_shape)
        channels = self._check_input(input_shape)
        out = self.output_spatial(self._spatial(input_shape), output_size)
        return self._assemble(input_shape[0], out, self.output_channels(channels))

    def compute_output_spec(self, inputs, output_size=None):
        shape = self.compute_output_shape(inputs.shape, output_size)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def build_kernels(self, in_channels):
        A.check_divisible(in_channels, self.groups, "input channels", self.__class__.__name__)
        self.kernel = self._add_kernel(
            "kernel", self.kernel_size + (self.filters // self.groups, in_channels),
            self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint,
            "transpose",
        )

    def _check_output_shape(self, input_shape):
        # An output_size given at call time may make a size the default can't: without
        # one from the constructor, that is checked per call (below), where it is known.
        if self.output_size is not None:
            self.compute_output_shape(input_shape)

    def call(self, inputs, output_size=None):
        if output_size is None and self.output_size is None:
            self.compute_output_shape(tuple(inputs.shape))  # the default must not be empty
        self._call_output_size = output_size
        return super().call(inputs)

    def convolve(self, inputs):
        return cops.conv_transpose(
            inputs, self._weight("kernel"), strides=self.strides, padding=self.padding,
            output_padding=self.output_padding, data_format=self.data_format,
            dilation_rate=self.dilation_rate, groups=self.groups,
            output_size=self._call_output_size or self.output_size,
        )

    def layer_config(self):
        config = super().layer_config()
        config.update({"filters": self.filters, "output_padding": self.output_padding,
                       "groups": self.groups, "output_size": self.output_size})
        config.update(self._kernel_config("kernel", self.kernel_initializer,
                                          self.kernel_regularizer, self.kernel_constraint))
        return config


@register
class Conv1DTranspose(BaseConvTranspose):
    """1D transposed convolution; arguments as `BaseConvTranspose`."""

    rank = 1


@register
class Conv2DTranspose(BaseConvTranspose):
    """2D transposed convolution (U-Net decoders); drop-in for `keras.layers.Conv2DTranspose`.

    Example: a (600, 600, 3) input with `Conv2DTranspose(64, 3, strides=2,
    padding="same")` gives (1200, 1200, 64); with `padding="valid"` (1201, 1201, 64).
    """

    rank = 2


@register
class Conv3DTranspose(BaseConvTranspose):
    """3D transposed convolution; arguments as `BaseConvTranspose`."""

    rank = 3

    # keras.layers.Conv3DTranspose takes data_format before output_padding (its 1D and 2D
    # classes after): the same order here, so positional calls mean the same.
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 output_padding=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format,
                         **kwargs)


def _data_format_first(signature):
    params = list(signature.parameters.values())
    names = [p.name for p in params]
    i, j = names.index("output_padding"), names.index("data_format")
    params[i], params[j] = params[j], params[i]
    return signature.replace(parameters=params)


Conv3DTranspose.__init__.__signature__ = _data_format_first(
    inspect.signature(BaseConvTranspose.__init__))


Convolution1DTranspose = Conv1DTranspose
Convolution2DTranspose = Deconvolution2D = Deconv2D = Conv2DTranspose
Convolution3DTranspose = Deconvolution3D = Deconv3D = Conv3DTranspose
