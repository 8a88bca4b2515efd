"""What every convolution-family layer shares: window arguments, bias, activation, shapes."""

import keras
from keras import activations, initializers, ops as kops

from keras_convx import constraints, regularizers
from keras_convx import ops as cops
from keras_convx.utils import args as A
from keras_convx.utils import layout
from keras_convx.utils import shapes as S


class SpatialLayer(keras.layers.Layer):
    """Abstract base of every keras_convx layer: `rank` spatial axes in a `data_format`.

    Public classes set `rank` (a class attribute) and inherit their family base's
    constructor, so `inspect.signature` shows its real parameters.
    """

    rank = None
    # Arguments the shadowed keras.layers class lacks, with the value meaning "not used":
    # get_config leaves them out at that value, so a plain config stays loadable by Keras.
    _extensions = {}

    def __init__(self, data_format=None, **kwargs):
        if self.rank is None:
            raise TypeError(f"{self.__class__.__name__} is abstract: use a class with a rank, "
                            f"e.g. its 1D/2D/3D version")
        super().__init__(**kwargs)
        self.data_format = A.normalize_data_format(data_format, self.__class__.__name__)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2)

    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _spatial(self, shape):
        shape = tuple(shape)
        return shape[1:-1] if self.data_format == "channels_last" else shape[2:]

    def _assemble(self, batch, spatial, channels):
        spatial = tuple(spatial)
        if self.data_format == "channels_last":
            return (batch,) + spatial + (channels,)
        return (batch, channels) + spatial

    # Layers with weights need the channel count; reshaping layers have none and take
    # inputs whose channel dim is unknown, as Keras's do.
    channels_known = True

    def _check_input(self, input_shape):
        """Checks the rank (and a known channel dim if the layer needs it); returns the
        channel count, or None."""
        return A.check_input_shape(input_shape, self.rank, self.data_format,
                                   self.__class__.__name__, self.channels_known)

    def get_config(self):
        config = super().get_config()
        config.update(self.layer_config())
        return {key: value for key, value in config.items()
                if key not in self._extensions or value != self._extensions[key]}

    def layer_config(self):
        """The layer's own config entries (subclasses extend it with `super()`);
        `get_config` drops the extensions left at their "not used" value."""
        return {"data_format": self.data_format}


class WindowedLayer(SpatialLayer):
    """Abstract base: a sliding-window layer over `rank` spatial axes with an optional bias.

    Subclasses set `_allow_causal`, create their kernels in `build_kernels` and
    compute the op in `convolve`; this class owns argument normalization, input
    validation, the bias, the activation, `compute_output_shape` and the
    shared part of `get_config`.
    """

    _allow_causal = True
    _supports_padding_mode = True
    _extensions = {"padding_mode": "zeros"}

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        bias_initializer="zeros",
        bias_regularizer=None,
        activity_regularizer=None,
        bias_constraint=None,
        padding_mode="zeros",
        **kwargs,
    ):
        super().__init__(data_format, activity_regularizer=activity_regularizer, **kwargs)
        owner, rank = self.__class__.__name__, self.rank
        self.kernel_size = A.normalize_tuple(kernel_size, rank, "kernel_size", owner)
        self.strides = A.normalize_tuple(strides, rank, "strides", owner)
        self.dilation_rate = A.normalize_tuple(dilation_rate, rank, "dilation_rate", owner)
        self.padding = A.normalize_padding(padding, rank, owner, allow_causal=self._allow_causal)
        if self._supports_padding_mode:
            self.padding_mode = A.normalize_padding_mode(padding_mode, owner)
        else:
            self.padding_mode = "zeros"
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.bias_constraint = constraints.get(bias_constraint)

    # -- shapes ---------------------------------------------------------------

    def output_spatial(self, lengths):
        """Output spatial lengths for input spatial `lengths` (None = unknown)."""
        return S.conv_output_lengths(
            self.padding, lengths, self.kernel_size, self.strides, self.dilation_rate
        )

    def output_channels(self, in_channels):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        owner = self.__class__.__name__
        channels = self._check_input(input_shape)
        lengths = self._spatial(input_shape)
        out = self.output_spatial(lengths)
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(
                f"{owner}: input spatial shape {tuple(lengths)} is too small for "
                f"kernel_size={self.kernel_size}, dilation_rate={self.dilation_rate}, "
                f"strides={self.strides}, padding={A.padding_to_config(self.padding)!r}: "
                f"the output would have shape {tuple(out)}"
            )
        return self._assemble(input_shape[0], out, self.output_channels(channels))

    def _check_output_shape(self, input_shape):
        """Raises at build when the output would be empty."""
        self.compute_output_shape(input_shape)

    # -- weights and call -----------------------------------------------------

    def build(self, input_shape):
        channels = self._check_input(input_shape)
        self._check_output_shape(input_shape)
        self._check_padding_mode_fits(self._spatial(input_shape))
        self.input_spec = keras.layers.InputSpec(
            ndim=self.rank + 2, axes={self._channel_axis: channels}
        )
        self.build_kernels(channels)
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.output_channels(channels),),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                trainable=True,
                dtype=self.dtype,
            )
        else:
            self.bias = None
        if self.quantization_mode == "int8" and not getattr(self, "_is_quantized", False):
            self._int8_variables()  # a quantized layer rebuilt from its config (`Int8Mixin`)
        self.built = True

    def _check_padding_mode_fits(self, lengths):
        if self.padding_mode == "zeros" or self.padding == "valid":
            return
        pads = S.resolve_pads(self.padding, lengths, self.kernel_size, self.strides,
                              self.dilation_rate)
        for n, p in zip(lengths, pads):
            if p is not None:
                cops.check_pad_fits(self.padding_mode, p, n, self.__class__.__name__)

    def build_kernels(self, in_channels):
        raise NotImplementedError

    def convolve(self, inputs):
        raise NotImplementedError

    def call(self, inputs):
        outputs = self.convolve(inputs)
        if self.use_bias:
            shape = [1] * (self.rank + 2)
            shape[self._channel_axis] = -1
            # Bias first: keras.ops.add on TF turns `add(x, bias)` into a bias_add that
            # picks the wrong axis for channels_first when the last length == channels.
            outputs = kops.add(kops.reshape(self.bias, shape), outputs)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _window_kwargs(self):
        return dict(
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            padding_mode=self.padding_mode,
        )

    # -- config ---------------------------------------------------------------

    def layer_config(self):
        config = super().layer_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": A.padding_to_config(self.padding),
                "dilation_rate": self.dilation_rate,
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "padding_mode": self.padding_mode,
            }
        )
        return config

    def _kernel_config(self, prefix, initializer, regularizer, constraint):
        return {
            f"{prefix}_initializer": initializers.serialize(initializer),
            f"{prefix}_regularizer": regularizers.serialize(regularizer),
            f"{prefix}_constraint": constraints.serialize(constraint),
        }

    def _add_kernel(self, name, shape, initializer, regularizer, constraint, kind):
        """Adds a kernel; layout-aware regularizers/constraints get bound to its layout."""
        kernel_layout = layout.for_kind(kind, self.rank)
        if hasattr(regularizer, "for_layout"):
            regularizer = regularizer.for_layout(kernel_layout)
        if hasattr(constraint, "for_layout"):
            constraint = constraint.for_layout(kernel_layout)
        return self.add_weight(
            name=name,
            shape=tuple(shape),
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
            trainable=True,
            dtype=self.dtype,
        )
