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

    def __init__(self, amounts, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        pairs = A.normalize_pairs(amounts, self.rank, self._pairs_arg, self.__class__.__name__)
        setattr(self, self._pairs_arg, A.pairs_to_config(pairs))
        self._pairs = pairs

    def layer_config(self):
        config = super().layer_config()
        config[self._pairs_arg] = getattr(self, self._pairs_arg)
        return config


class BaseCropping(_PairsLayer):
    """Abstract N-D cropping; `Cropping1D/2D/3D` set `rank` and Keras's defaults.

    Args:
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

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)

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
    """Abstract N-D padding with a fill mode; `Padding1D/2D/3D` set `rank` and defaults.

    Args:
        padding: int, tuple of `rank` ints (symmetric) or `rank` (before,
            after) pairs; a (before, after) pair for rank 1.
        data_format: `"channels_last"` or `"channels_first"`.
        mode: `"zeros"`, `"constant"` (fills `constant_value`), `"reflect"`,
            `"symmetric"`, `"replicate"` or `"circular"` (numpy's reflect,
            symmetric, edge and wrap).
        constant_value: fill value for `"constant"`.
    """

    _pairs_arg = "padding"

    def __init__(self, padding, data_format=None, mode="zeros", constant_value=0.0, **kwargs):
        super().__init__(padding, data_format, **kwargs)
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

    def layer_config(self):
        config = super().layer_config()
        config.update({"mode": self.mode, "constant_value": self.constant_value})
        return config


class BaseZeroPadding(BasePadding):
    """Zero padding: `BasePadding` fixed to zeros, with Keras's arguments and config keys."""

    _extensions = {"mode": "zeros", "constant_value": 0.0}

    def __init__(self, padding, data_format=None, **kwargs):
        super().__init__(padding, data_format, mode="zeros", **kwargs)


LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


class BaseUpSampling(SpatialLayer):
    """Abstract N-D up-sampling; `UpSampling1D/2D/3D` set `rank` and Keras's defaults.

    Args:
        size: positive number or tuple per axis; non-integers allowed (the
            output length is floor(L * size)).
        data_format: `"channels_last"` or `"channels_first"`.
        interpolation: `"nearest"`, the rank's linear mode (`"linear"`,
            `"bilinear"`, `"trilinear"`), or for 2D `"bicubic"` (a = -0.75 as
            PyTorch and ONNX Resize) and `"lanczos3"`/`"lanczos5"` (as
            `keras.ops.image.resize`; not exportable: ONNX Resize has no Lanczos mode).
        align_corners: False = half-pixel centres (Keras's default); True =
            PyTorch's `align_corners=True`. Ignored by `"nearest"`.
        exclude_outside: 2D `"bicubic"` only: taps outside the input weighted 0 and the
            others renormalized (ONNX Resize's `exclude_outside=1`, as TensorFlow 1's
            `resize_bicubic(half_pixel_centers=True)`); False clamps taps at the edge.
    """

    channels_known = False  # no weights

    def __init__(self, size, data_format=None, interpolation="nearest", align_corners=False,
                 exclude_outside=False, **kwargs):
        super().__init__(data_format, **kwargs)
        owner, rank = self.__class__.__name__, self.rank
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
        self.exclude_outside = bool(exclude_outside)
        if self.exclude_outside and value != "bicubic":
            raise ValueError(f"{owner}: exclude_outside=True applies to interpolation="
                             f"'bicubic' only, got {value!r}")

    def compute_output_shape(self, input_shape):
        channels = self._check_input(input_shape)
        out = [S.resize_output_length(n, s) for n, s in zip(self._spatial(input_shape), self.size)]
        return self._assemble(input_shape[0], out, channels)

    def call(self, inputs):
        return cops.resize(inputs, self.size, self.interpolation, self.align_corners,
                           self.data_format, exclude_outside=self.exclude_outside)

    def layer_config(self):
        config = super().layer_config()
        config.update({"size": self.size[0] if self.rank == 1 else self.size,  # as Keras's
                       "interpolation": self.interpolation, "align_corners": self.align_corners,
                       "exclude_outside": self.exclude_outside})
        return config


# The public rank classes: `rank`, Keras's defaults, and which of the base's arguments the
# keras.layers class of the same name lacks (left out of the config when unused).


@register
class Cropping1D(BaseCropping):
    """1D cropping; drop-in for `keras.layers.Cropping1D` (plus `data_format`)."""

    rank = 1
    _extensions = {"data_format": "channels_last"}

    def __init__(self, cropping=(1, 1), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


@register
class Cropping2D(BaseCropping):
    """2D cropping; drop-in for `keras.layers.Cropping2D`."""

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


@register
class Cropping3D(BaseCropping):
    """3D cropping; drop-in for `keras.layers.Cropping3D`."""

    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


@register
class Padding1D(BasePadding):
    """1D padding with a fill mode (not in Keras)."""

    rank = 1

    def __init__(self, padding=1, data_format=None, mode="zeros", constant_value=0.0, **kwargs):
        super().__init__(padding, data_format, mode, constant_value, **kwargs)


@register
class Padding2D(BasePadding):
    """2D padding with a fill mode (not in Keras), e.g. `Padding2D(3, mode="reflect")`."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, mode="zeros", constant_value=0.0,
                 **kwargs):
        super().__init__(padding, data_format, mode, constant_value, **kwargs)


@register
class Padding3D(BasePadding):
    """3D padding with a fill mode (not in Keras)."""

    rank = 3

    def __init__(self, padding=(1, 1, 1), data_format=None, mode="zeros", constant_value=0.0,
                 **kwargs):
        super().__init__(padding, data_format, mode, constant_value, **kwargs)


@register
class ZeroPadding1D(BaseZeroPadding):
    """1D zero padding; drop-in for `keras.layers.ZeroPadding1D`."""

    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


@register
class ZeroPadding2D(BaseZeroPadding):
    """2D zero padding; drop-in for `keras.layers.ZeroPadding2D`."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


@register
class ZeroPadding3D(BaseZeroPadding):
    """3D zero padding; drop-in for `keras.layers.ZeroPadding3D`."""

    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


@register
class UpSampling1D(BaseUpSampling):
    """1D up-sampling; Keras's has only `size` (nearest, channels_last)."""

    rank = 1
    _extensions = {"data_format": "channels_last", "interpolation": "nearest",
                   "align_corners": False, "exclude_outside": False}

    def __init__(self, size=2, data_format=None, interpolation="nearest", align_corners=False,
                 **kwargs):
        super().__init__(size, data_format, interpolation, align_corners, **kwargs)


@register
class UpSampling2D(BaseUpSampling):
    """2D up-sampling: nearest, bilinear, bicubic, lanczos3/5; drop-in for Keras's."""

    rank = 2
    _extensions = {"align_corners": False, "exclude_outside": False}

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest",
                 align_corners=False, exclude_outside=False, **kwargs):
        super().__init__(size, data_format, interpolation, align_corners, exclude_outside,
                         **kwargs)


@register
class UpSampling3D(BaseUpSampling):
    """3D up-sampling; trilinear too (Keras's: nearest only)."""

    rank = 3
    _extensions = {"interpolation": "nearest", "align_corners": False, "exclude_outside": False}

    def __init__(self, size=(2, 2, 2), data_format=None, interpolation="nearest",
                 align_corners=False, **kwargs):
        super().__init__(size, data_format, interpolation, align_corners, **kwargs)


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
