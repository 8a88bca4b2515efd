"""`model.quantize("int8")` for the convolution family, on the pattern of Keras's Dense.

Kernels become int8 with one symmetric abs-max scale per output channel (`<name>_scale`,
shaped like the kernel with 1 on the reduced axes; `q = round(w * scale)`, as Keras's
`kernel_scale`). Inputs are quantized at each call to int8 with one abs-max scale per
position over the channel axis, as Keras's Dense quantizes each input row. Backends have
no int8 convolution on CPU, so the convolution runs on the dequantized integers: the same
values an int8 kernel would accumulate, up to float32 rounding of the sums. Gradients pass
straight through the input quantization.
"""

import numpy as np
from keras import ops as kops

EPSILON = 1e-7  # keras.backend.epsilon(), as Keras's AbsMaxQuantizer adds it
RANGE = 127.0


def quantize_kernel(kernel, out_axes):
    """(int8 kernel, float32 scale) with one abs-max scale per index of `out_axes`."""
    w = np.asarray(kernel, np.float32)
    out = {a % w.ndim for a in out_axes}
    axes = tuple(a for a in range(w.ndim) if a not in out)
    scale = np.divide(np.float32(RANGE),
                      np.max(np.abs(w), axis=axes, keepdims=True) + np.float32(EPSILON),
                      dtype=np.float32)
    q = np.clip(np.round(w * scale), -RANGE, RANGE).astype(np.int8)
    return q, scale.astype(np.float32)


def scale_attr(attr):
    """The attribute holding a kernel's scales: `kernel_scale` for `_kernel` or `kernel`,
    as Keras's Dense names it."""
    return attr.lstrip("_") + "_scale"


class Int8Mixin:
    """int8 kernels and inputs for a windowed layer; subclasses list their kernels in
    `_int8_kernels` as {attribute: output-channel axes}."""

    _int8_kernels = {}

    @property
    def _int8(self):
        return getattr(self, "_is_quantized", False) and self.quantization_mode == "int8"

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantizes the layer's kernels to int8 (`mode="int8"` only); see the module."""
        owner = f"{type(self).__name__} '{self.name}'"
        if mode != "int8":
            raise NotImplementedError(f"{owner}: quantize supports mode='int8', got {mode!r}")
        if config is not None and (getattr(config, "weight_quantizer", None) is not None or
                                   not _default_activation(config)):
            raise NotImplementedError(
                f"{owner}: only the default int8 config (per-channel abs-max weights, abs-max "
                f"int8 inputs) is supported, got {config!r}")
        if getattr(self, "lora_enabled", False):
            raise ValueError(f"{owner}: can't quantize with LoRA enabled; the quantized kernel "
                             f"would drop the low-rank delta")
        values = {attr: quantize_kernel(kops.convert_to_numpy(self._float_kernel(attr)), axes)
                  for attr, axes in self._int8_kernels.items()}
        self._int8_variables()
        for attr, (q, scale) in values.items():
            getattr(self, attr).assign(q)
            getattr(self, scale_attr(attr)).assign(scale)
        from keras import dtype_policies

        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = dtype_policies.get(f"int8_from_{self.dtype_policy.name}")

    def _float_kernel(self, attr):
        return getattr(self, attr)

    def _int8_variables(self):
        """Replaces each float kernel with an int8 variable and its scale."""
        for attr in self._int8_kernels:
            old = getattr(self, attr)
            shape, name = tuple(old.shape), old.name
            delattr(self, attr)
            setattr(self, attr, self.add_weight(name=name, shape=shape, initializer="zeros",
                                                dtype="int8", trainable=False))
            scale_shape = tuple(1 if a not in self._out_axes(attr, len(shape)) else d
                                for a, d in enumerate(shape))
            setattr(self, scale_attr(attr), self.add_weight(
                name=name.split("/")[-1] + "_scale", shape=scale_shape, initializer="ones",
                trainable=False, dtype="float32"))
        self._is_quantized = True

    def _out_axes(self, attr, ndim):
        return {a % ndim for a in self._int8_kernels[attr]}

    def _weight(self, attr):
        """The kernel the convolution uses: dequantized when the layer is int8."""
        if not self._int8 or attr not in self._int8_kernels:
            return getattr(self, attr)
        return kops.divide(kops.cast(getattr(self, attr), self.compute_dtype),
                           getattr(self, scale_attr(attr)))

    def _int8_call(self, inputs, *args, **kwargs):
        return self.call(self._quantize_inputs(inputs), *args, **kwargs)

    def _quantize_inputs(self, inputs):
        axis = self._channel_axis

        @kops.custom_gradient
        def fake_quantize(x):
            amax = kops.max(kops.abs(x), axis=axis, keepdims=True)
            scale = kops.divide(RANGE, kops.add(amax, EPSILON))
            q = kops.clip(kops.round(kops.multiply(x, scale)), -RANGE, RANGE)

            def grad(*args, upstream=None):
                return args[0] if upstream is None else upstream

            return kops.divide(q, scale), grad

        return fake_quantize(inputs)

    # -- saving: kernels, bias, scales (Keras Dense's order) -------------------

    def _int8_store_order(self):
        names = list(self._int8_kernels) + (["bias"] if self.use_bias else [])
        return names + [scale_attr(attr) for attr in self._int8_kernels]

    def save_own_variables(self, store):
        if not self._int8:
            return super().save_own_variables(store)
        for i, attr in enumerate(self._int8_store_order()):
            store[str(i)] = getattr(self, attr)

    def load_own_variables(self, store):
        if not self._int8:
            return super().load_own_variables(store)
        order = self._int8_store_order()
        if len(store.keys()) != len(order):
            raise ValueError(f"{type(self).__name__} '{self.name}': expected {len(order)} int8 "
                             f"variables ({', '.join(order)}), the file has {len(store.keys())}")
        for i, attr in enumerate(order):
            getattr(self, attr).assign(store[str(i)])


def _default_activation(config):
    quantizer = getattr(config, "activation_quantizer", None)
    if quantizer is None:
        return False
    return tuple(getattr(quantizer, "value_range", (-127, 127))) == (-127, 127)
