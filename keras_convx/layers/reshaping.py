"""Cropping, padding and up-sampling layers, 1D/2D/3D, on one base per family."""

import keras

from keras_convx import ops as cops
from keras_convx.layers.base import SpatialLayer
from keras_convx.utils import args as A
from keras_convx.utils import shapes as S

register = keras.saving.register_keras_serializable(package="keras_convx")


class _PairsLayer(SpatialLayer):
    """A layer whose argument is (before, after) amounts per spatial axis."""

    channels_known = False  # no weights
    _pairs_arg = None  # the argument's name: "cropping" or "padding"
    _keras_has_data_format = True  # keras.layers.Cropping1D has no data_format

    def __init__(self, rank, amounts, data_format=None, **kwargs):
        super().__init__(rank, data_format, **kwargs)
        pairs = A.normalize_pairs(amounts, rank, self._pairs_arg, self.__class__.__name__)
        setattr(self, self._pairs_arg, A.pairs_to_config(pairs))
        self._pairs = pairs

    def get_config(self):
        config = super().get_config()
        config[self._pairs_arg] = getattr(self, self._pairs_arg)
        if self._keras_has_data_format or self.data_format != "channels_last":
            config["data_format"] = self.data_format
        return config


class BaseCropping(_PairsLayer):
    """Abstract N-D cropping; `Cropping1D/2D/3D` only fix `rank` and defaults.

    Args:
        rank: number of spatial axes.
        cropping: int, tuple of `rank` ints (symmetric) or `rank` (before,
            after) pairs; a (before, after) pair for rank 1. Must not be negative.
        data_format: `"channels_last"` or `"channels_first"`.

    Input shape:
        `(batch, *spatial, channels)` (channels_last) or `(batch, channels, *spatial)`.

    Output shape:
        Each spatial length reduced by before + after; cropping all of an axis
        is an error at build time, never an empty tensor.
    """

    _pairs_arg = "cropping"

    def __init__(self, rank, cropping, data_format=None, **kwargs):
        super().__init__(rank, cropping, data_format, **kwargs)

    def compute_output_shape(self, input_shape):
        channels = self._check_input(input_shape)
        out = []
        for axis, (n, (b, a)) in enumerate(zip(self._spatial(input_shape), self._pairs)):
            if n is not None and n - b - a <= 0:
                raise ValueError(
                    f"{self.__class__.__name__}: cropping {self.cropping} removes all of "
                    f"the input (spatial shape {tuple(self._spatial(input_shape))}, axis {axis})"
                )
            out.append(None if n is None else n - b - a)
        return self._assemble(input_shape[0], out, channels)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def call(self, inputs):
        return cops.crop(inputs, self._pairs, data_format=self.data_format)


class BasePadding(_PairsLayer):
    """Abstract N-D padding with a fill mode; `Padding1D/2D/3D` only fix `rank`.

    Args:
        rank: number of spatial axes.
        padding: int, tuple of `rank` ints (symmetric) or `rank` (before,
            after) pairs; a (before, after) pair for rank 1.
        mode: `"zeros"`, `"constant"` (fills `constant_value`), `"reflect"`,
            `"symmetric"`, `"replicate"` or `"circular"` (numpy's reflect,
            symmetric, edge and wrap).
        constant_value: fill value for `"constant"`.
        data_format: `"channels_last"` or `"channels_first"`.
    """

    _pairs_arg = "padding"

    def __init__(self, rank, padding, data_format=None, mode="zeros", constant_value=0.0,
                 **kwargs):
        super().__init__(rank, padding, data_format, **kwargs)
        self.mode = A.normalize_padding_mode(mode, self.__class__.__name__, A.PAD_MODES, "mode")
        self.constant_value = float(constant_value)

    def compute_output_shape(self, input_shape):
        channels = self._check_input(input_shape)
        out = [None if n is None else n + b + a
               for n, (b, a) in zip(self._spatial(input_shape), self._pairs)]
        return self._assemble(input_shape[0], out, channels)

    def build(self, input_shape):
        self._check_input(input_shape)
        for n, pair in zip(self._spatial(input_shape), self._pairs):
            cops.check_pad_fits(self.mode, pair, n, self.__class__.__name__)
        self.built = True

    def call(self, inputs):
        return cops.pad(inputs, self._pairs, mode=self.mode, constant_value=self.constant_value,
                        data_format=self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "constant_value": self.constant_value})
        return config


class BaseZeroPadding(BasePadding):
    """Zero padding: `BasePadding` with `mode="zeros"` and Keras's config keys."""

    def __init__(self, rank, padding, data_format=None, **kwargs):
        super().__init__(rank, padding, data_format, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["mode"], config["constant_value"]
        return config


LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


class BaseUpSampling(SpatialLayer):
    """Abstract N-D up-sampling; `UpSampling1D/2D/3D` only fix `rank` and defaults.

    Args:
        rank: number of spatial axes.
        size: positive number or tuple per axis; non-integers allowed (the
            output length is floor(L * size)).
        data_format: `"channels_last"` or `"channels_first"`.
        interpolation: `"nearest"`, the rank's linear mode (`"linear"`,
            `"bilinear"`, `"trilinear"`), or for 2D `"bicubic"` (a = -0.75 as
            PyTorch and ONNX Resize) and `"lanczos3"`/`"lanczos5"` (as
            `keras.ops.image.resize`; not exportable: ONNX Resize has no Lanczos mode).
        align_corners: False = half-pixel centres (Keras's default); True =
            PyTorch's `align_corners=True`. Ignored by `"nearest"`.
    """

    channels_known = False  # no weights

    def __init__(self, rank, size=2, data_format=None, interpolation="nearest",
                 align_corners=False, **kwargs):
        super().__init__(rank, data_format, **kwargs)
        owner = self.__class__.__name__
        self.size = A.normalize_scale(size, rank, owner)
        allowed = ("nearest", LINEAR[rank]) + (
            ("bicubic", "lanczos3", "lanczos5") if rank == 2 else ())
        value = interpolation.lower() if isinstance(interpolation, str) else interpolation
        if value not in allowed:
            raise ValueError(f"{owner}: interpolation must be one of {allowed}, got {interpolation!r}")
        self.interpolation = value
        self.align_corners = bool(align_corners)
        if self.align_corners and value.startswith("lanczos"):
            raise ValueError(f"{owner}: align_corners applies to linear and cubic "
                             f"interpolation, not {value!r}")

    def compute_output_shape(self, input_shape):
        channels = self._check_input(input_shape)
        out = [S.resize_output_length(n, s) for n, s in zip(self._spatial(input_shape), self.size)]
        return self._assemble(input_shape[0], out, channels)

    def call(self, inputs):
        return cops.resize(inputs, self.size, self.interpolation, self.align_corners,
                           self.data_format)

    def get_config(self):
        config = super().get_config()
        # Only the keys keras.layers has, plus the extensions in use.
        config["size"] = self.size[0] if self.rank == 1 else self.size
        if self.rank > 1 or self.data_format != "channels_last":
            config["data_format"] = self.data_format
        if self.rank == 2 or self.interpolation != "nearest":
            config["interpolation"] = self.interpolation
        if self.align_corners:
            config["align_corners"] = True
        return config


def _thin(base, rank, doc, defaults):
    """A public rank class of `base`: fixes `rank` and Keras's positional defaults."""
    first = next(iter(defaults))

    def __init__(self, *args, **kwargs):
        if not args and first not in kwargs:
            kwargs[first] = defaults[first]
        super(cls, self).__init__(rank, *args, **kwargs)

    cls = type(base.__name__.replace("Base", "") + f"{rank}D", (base,), {
        "__init__": __init__, "__doc__": doc, "__module__": __name__,
        "_keras_has_data_format": not (rank == 1 and base is BaseCropping),
    })
    return register(cls)


Cropping1D = _thin(BaseCropping, 1, "1D cropping (drop-in for keras.layers.Cropping1D).",
                   {"cropping": (1, 1)})
Cropping2D = _thin(BaseCropping, 2, "2D cropping (drop-in for keras.layers.Cropping2D).",
                   {"cropping": ((0, 0), (0, 0))})
Cropping3D = _thin(BaseCropping, 3, "3D cropping (drop-in for keras.layers.Cropping3D).",
                   {"cropping": ((1, 1), (1, 1), (1, 1))})
Padding1D = _thin(BasePadding, 1, "1D padding with a fill mode (not in Keras).", {"padding": 1})
Padding2D = _thin(BasePadding, 2, "2D padding with a fill mode (not in Keras).",
                  {"padding": (1, 1)})
Padding3D = _thin(BasePadding, 3, "3D padding with a fill mode (not in Keras).",
                  {"padding": (1, 1, 1)})
ZeroPadding1D = _thin(BaseZeroPadding, 1, "1D zero padding (drop-in for keras.layers).",
                      {"padding": 1})
ZeroPadding2D = _thin(BaseZeroPadding, 2, "2D zero padding (drop-in for keras.layers).",
                      {"padding": (1, 1)})
ZeroPadding3D = _thin(BaseZeroPadding, 3, "3D zero padding (drop-in for keras.layers).",
                      {"padding": ((1, 1), (1, 1), (1, 1))})
UpSampling1D = _thin(BaseUpSampling, 1, "1D up-sampling; Keras's has only `size`.", {"size": 2})
UpSampling2D = _thin(BaseUpSampling, 2, "2D up-sampling, nearest/bilinear/bicubic.",
                     {"size": (2, 2)})
UpSampling3D = _thin(BaseUpSampling, 3, "3D up-sampling; trilinear too (Keras: nearest only).",
                     {"size": (2, 2, 2)})


@register
class CropToMatch(keras.layers.Layer):
    """Crops its first input to the spatial shape of its second (U-Net skip connections).

    Args:
        anchor: `"center"` (extra position goes to the end), `"start"` or `"end"`.
        data_format: `"channels_last"` or `"channels_first"`.

    Call arguments:
        inputs: `[x, reference]`, tensors of the same rank; `x` keeps its channels.

    Example:
    >>> skip = CropToMatch()([encoder_features, decoder_features])
    """

    def __init__(self, anchor="center", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = self.__class__.__name__
        if anchor not in ("center", "start", "end"):
            raise ValueError(f"{owner}: anchor must be one of ('center', 'start', 'end'), got {anchor!r}")
        self.anchor = anchor
        self.data_format = A.normalize_data_format(data_format, owner)

    def _crops(self, shape, ref_shape):
        owner = self.__class__.__name__
        if len(shape) != len(ref_shape) or len(shape) < 3:
            raise ValueError(
                f"{owner}: inputs must be two tensors of the same rank >= 3, got shapes "
                f"{tuple(shape)} and {tuple(ref_shape)}"
            )
        spatial = slice(1, -1) if self.data_format == "channels_last" else slice(2, None)
        crops = []
        for n, m in zip(tuple(shape)[spatial], tuple(ref_shape)[spatial]):
            if n is None or m is None:
                crops.append(None)
                continue
            if m > n:
                raise ValueError(
                    f"{owner}: the reference is larger than the input to crop: spatial "
                    f"shapes {tuple(shape)[spatial]} and {tuple(ref_shape)[spatial]}"
                )
            extra = n - m
            before = {"center": extra // 2, "start": 0, "end": extra}[self.anchor]
            crops.append((before, extra - before))
        return crops

    def compute_output_shape(self, input_shapes):
        shape, ref = (tuple(s) for s in input_shapes)
        self._crops(shape, ref)
        spatial = slice(1, -1) if self.data_format == "channels_last" else slice(2, None)
        out = list(shape)
        out[spatial] = ref[spatial]
        return tuple(out)

    def call(self, inputs):
        x, ref = inputs
        crops = self._crops(x.shape, ref.shape)
        if any(c is None for c in crops):
            raise ValueError(
                f"{self.__class__.__name__}: spatial sizes must be known when called, got "
                f"{tuple(x.shape)} and {tuple(ref.shape)}"
            )
        return cops.crop(x, crops, data_format=self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update({"anchor": self.anchor, "data_format": self.data_format})
        return config
