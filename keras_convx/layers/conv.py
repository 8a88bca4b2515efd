"""Conv1D/2D/3D: drop-in for `keras.layers.ConvND`, plus padding modes, explicit and
causal padding for every rank, and strides > 1 together with dilation > 1."""

import keras
from keras import initializers, ops as kops

from keras_convx import constraints, regularizers
from keras_convx import ops as cops
from keras_convx.layers.base import WindowedLayer
from keras_convx.layers.int8 import Int8Mixin
from keras_convx.utils import args as A

register = keras.saving.register_keras_serializable(package="keras_convx")


class BaseConv(Int8Mixin, WindowedLayer):
    """Abstract N-D convolution layer; `Conv1D/2D/3D` only set `rank`.

    Args:
        filters: number of output channels.
        kernel_size: int or tuple of `rank` ints.
        strides: int or tuple of `rank` ints. May be combined with `dilation_rate > 1`.
        padding: `"valid"`, `"same"`, `"causal"` (causal along the first spatial
            axis, "same" on the others), an int, a tuple of `rank` ints, or `rank`
            (before, after) pairs.
        data_format: `"channels_last"` (default from the Keras config) or `"channels_first"`.
        dilation_rate: int or tuple of `rank` ints.
        groups: positive int dividing both the input channels and `filters`.
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as in `keras.layers.Conv2D`.
        padding_mode: `"zeros"`, `"reflect"`, `"symmetric"`, `"replicate"` or
            `"circular"`: how padded positions are filled (as PyTorch's `padding_mode`).
        lora_rank, lora_alpha: LoRA as in `keras.layers.Conv2D` (see `enable_lora`).

    Input shape:
        `(batch, *spatial, channels)` for channels_last, `(batch, channels, *spatial)` otherwise.

    Output shape:
        `(batch, *new_spatial, filters)` (channels_last); each new length is
        `floor((L + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1`.
    """

    _extensions = {**WindowedLayer._extensions, "lora_rank": None, "lora_alpha": None}
    _int8_kernels = {"_kernel": (-1,)}

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        padding_mode="zeros",
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
            bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, bias_constraint=bias_constraint,
            padding_mode=padding_mode, **kwargs,
        )
        owner = self.__class__.__name__
        self.filters = A.normalize_positive_int(filters, "filters", owner)
        self.groups = A.normalize_positive_int(groups, "groups", owner)
        A.check_divisible(self.filters, self.groups, "filters", owner)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False

    def output_channels(self, in_channels):
        return self.filters

    def build_kernels(self, in_channels):
        A.check_divisible(in_channels, self.groups, "input channels", self.__class__.__name__)
        self._kernel = self._add_kernel(
            "kernel", self.kernel_size + (in_channels // self.groups, self.filters),
            self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint, "conv",
        )

    def build(self, input_shape):
        super().build(input_shape)
        if self.lora_rank:
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    @property
    def kernel(self):
        """The effective kernel (with the LoRA delta merged in when enabled)."""
        if not self.built:
            raise AttributeError(f"{self.__class__.__name__}: build the layer before reading kernel")
        if self._int8:
            return self._weight("_kernel")
        if not self.lora_enabled:
            return self._kernel
        delta = kops.matmul(self.lora_kernel_a, self.lora_kernel_b)
        scale = self.lora_alpha / self.lora_rank
        return kops.cast(kops.add(self._kernel, scale * delta), self.compute_dtype)

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform",
                    b_initializer="zeros"):
        """Freezes `kernel` and learns a low-rank delta `a @ b` scaled by `lora_alpha / rank`."""
        owner = self.__class__.__name__
        rank = A.normalize_positive_int(rank, "lora_rank", owner)
        if self.kernel_constraint:
            raise ValueError(f"{owner}: LoRA can't be enabled with a kernel_constraint set")
        if not self.built:
            raise ValueError(f"{owner}: LoRA can only be enabled on a built layer")
        if self.lora_enabled:
            raise ValueError(f"{owner}: LoRA is already enabled")
        self._tracker.unlock()
        # float32 so that small updates neither underflow nor overflow in mixed precision.
        self.lora_kernel_a = self.add_weight(
            name="lora_kernel_a", shape=tuple(self._kernel.shape[:-1]) + (rank,),
            initializer=initializers.get(a_initializer), dtype="float32",
            regularizer=self.kernel_regularizer,
        )
        self.lora_kernel_b = self.add_weight(
            name="lora_kernel_b", shape=(rank, self.filters),
            initializer=initializers.get(b_initializer), dtype="float32",
            regularizer=self.kernel_regularizer,
        )
        self._kernel.trainable = False
        self._tracker.lock()
        self.lora_enabled = True
        self.lora_rank = rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else rank

    def save_own_variables(self, store):
        # The merged kernel is saved, so files match keras.layers' (kernel, bias).
        if not self.built:
            return
        if self._int8:
            return Int8Mixin.save_own_variables(self, store)
        variables = [self.kernel] + ([self.bias] if self.use_bias else [])
        for i, variable in enumerate(variables):
            store[str(i)] = variable

    def load_own_variables(self, store):
        if not self.built:
            return
        if self._int8:
            return Int8Mixin.load_own_variables(self, store)
        variables = [self._kernel] + ([self.bias] if self.use_bias else [])
        if len(store.keys()) != len(variables):
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}': expected {len(variables)} "
                f"variables (kernel{', bias' if self.use_bias else ''}), the file has "
                f"{len(store.keys())}"
            )
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])
        if self.lora_enabled:
            self.lora_kernel_a.assign(kops.zeros(self.lora_kernel_a.shape))
            self.lora_kernel_b.assign(kops.zeros(self.lora_kernel_b.shape))

    def convolve(self, inputs):
        return cops.conv(inputs, self.kernel, groups=self.groups, **self._window_kwargs())

    def layer_config(self):
        config = super().layer_config()
        config.update({"filters": self.filters, "groups": self.groups,
                       "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha})
        config.update(self._kernel_config("kernel", self.kernel_initializer,
                                          self.kernel_regularizer, self.kernel_constraint))
        return config


@register
class Conv1D(BaseConv):
    """1D convolution (temporal), e.g. WaveNet-style causal stacks.

    Same arguments as `BaseConv`; `padding="causal"` pads
    `dilation_rate * (kernel_size - 1)` steps on the left only.

    Example:
    >>> y = Conv1D(8, 3, padding="causal", dilation_rate=2)(np.zeros((2, 16, 4)))
    >>> y.shape
    (2, 16, 8)
    """

    rank = 1


@register
class Conv2D(BaseConv):
    """2D convolution over images; arguments as `BaseConv`.

    Example:
    >>> Conv2D(64, 3, strides=2, padding="same", padding_mode="reflect")
    """

    rank = 2


@register
class Conv3D(BaseConv):
    """3D convolution over volumes or video; arguments as `BaseConv`."""

    rank = 3


Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution3D = Conv3D
