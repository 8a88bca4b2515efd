"""Cropping, padding and up-sampling layers: Keras parity, numpy.pad, the float64
interpolation oracle and torch.nn.functional.interpolate."""

import itertools

import keras
import numpy as np
import pytest

import keras_convx as kc
import oracle
from helpers import assert_close, make_input, rand

FORMATS = ("channels_last", "channels_first")


def _keras_cases():
    cases = [
        ("Cropping1D", {}), ("Cropping1D", {"cropping": 2}), ("Cropping1D", {"cropping": (0, 3)}),
        ("Cropping2D", {"cropping": 1}), ("Cropping2D", {"cropping": (1, 2)}),
        ("Cropping2D", {"cropping": ((1, 0), (2, 1))}),
        ("Cropping3D", {}), ("Cropping3D", {"cropping": ((0, 1), (2, 0), (1, 1))}),
        ("ZeroPadding1D", {}), ("ZeroPadding1D", {"padding": (2, 0)}),
        ("ZeroPadding2D", {"padding": 2}), ("ZeroPadding2D", {"padding": ((1, 0), (0, 3))}),
        ("ZeroPadding3D", {"padding": (1, 0, 2)}),
        ("UpSampling1D", {"size": 3}), ("UpSampling2D", {"size": (2, 3)}),
        ("UpSampling2D", {"size": 2, "interpolation": "bilinear"}),
        ("UpSampling3D", {"size": (1, 2, 3)}),
    ]
    for name, kwargs in cases:
        rank = int(name[-2])
        keras_fmts = FORMATS if "data_format" in keras.layers.__dict__[name]().get_config() \
            else ("channels_last",)
        for fmt in keras_fmts:
            yield pytest.param(name, kwargs, rank, fmt,
                               id=f"{name}-{'-'.join(f'{k}{v}' for k, v in kwargs.items())}-{fmt}")


# a quarter on JAX: the layers are backend-agnostic keras.ops code
@pytest.mark.thin_on_jax(4)
@pytest.mark.parametrize("name,kwargs,rank,fmt", list(_keras_cases()))
def test_matches_keras_layer(name, kwargs, rank, fmt):
    if "Cropping1D" != name and "UpSampling1D" != name:
        kwargs = dict(kwargs, data_format=fmt)
    x = make_input(rank, 3, fmt, size=6)
    ours, ref = getattr(kc, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    expected = keras.ops.convert_to_numpy(ref(x))
    assert_close(ours(x), expected)
    assert ours.compute_output_shape(x.shape) == expected.shape
    assert ours.get_config().keys() == ref.get_config().keys()


@pytest.mark.parametrize("rank,mode,fmt", list(itertools.product(
    (1, 2, 3), ("zeros", "constant", "reflect", "symmetric", "replicate", "circular"), FORMATS)),
    ids=lambda v: str(v))
def test_padding_layer_matches_numpy_pad(rank, mode, fmt):
    x = make_input(rank, 2, fmt, size=5)
    pads = ((2, 0), (1, 3), (0, 4))[:rank]
    layer = {1: kc.Padding1D, 2: kc.Padding2D, 3: kc.Padding3D}[rank](
        pads if rank > 1 else pads[0], mode=mode, constant_value=2.5, data_format=fmt)
    y = layer(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y),
                                  oracle.pad(x, pads, mode, 2.5, fmt).astype("float32"))
    assert layer.compute_output_shape(x.shape) == tuple(y.shape)


INTERP = [(1, "linear"), (2, "bilinear"), (2, "bicubic"), (3, "trilinear"), (1, "nearest"),
          (2, "nearest"), (3, "nearest")]


def _interp_cases():
    for (rank, mode), align, scale, fmt in itertools.product(
        INTERP, (False, True), (2, 3, 1.5), FORMATS,
    ):
        if mode == "nearest" and align:
            continue
        if rank == 3 and (fmt == "channels_first" or scale == 3):
            continue
        yield pytest.param(rank, mode, align, scale, fmt,
                           id=f"{mode}{rank}d-align{int(align)}-x{scale}-{fmt}")


@pytest.mark.thin_on_jax(4)
@pytest.mark.parametrize("rank,mode,align,scale,fmt", list(_interp_cases()))
def test_upsampling_matches_oracle(rank, mode, align, scale, fmt):
    x = make_input(rank, 2, fmt, size=4)
    cls = {1: kc.UpSampling1D, 2: kc.UpSampling2D, 3: kc.UpSampling3D}[rank]
    layer = cls(scale, interpolation=mode, align_corners=align, data_format=fmt)
    y = layer(x)
    assert_close(y, oracle.resize(x, (scale,) * rank, mode, align, fmt))
    assert layer.compute_output_shape(x.shape) == tuple(y.shape)


@pytest.mark.parametrize("align,scale,fmt", list(itertools.product((False, True), (2, 1.5, 0.5),
                                                                   FORMATS)))
def test_bicubic_exclude_outside_matches_oracle(align, scale, fmt):
    """ONNX Resize's exclude_outside=1: taps outside the input weigh 0, the rest sum to 1."""
    x = make_input(2, 2, fmt, size=6)
    layer = kc.UpSampling2D(scale, interpolation="bicubic", align_corners=align,
                            exclude_outside=True, data_format=fmt)
    y = layer(x)
    assert_close(y, oracle.resize(x, (scale,) * 2, "bicubic", align, fmt, exclude_outside=True))
    if not (align and scale == 0.5):  # there every sample lands on a pixel: no edge taps
        clamped = oracle.resize(x, (scale,) * 2, "bicubic", align, fmt)
        assert np.abs(keras.ops.convert_to_numpy(y) - clamped).max() > 1e-3  # not the clamp
    assert layer.compute_output_shape(x.shape) == tuple(y.shape)
    assert kc.UpSampling2D.from_config(layer.get_config()).exclude_outside


@pytest.mark.parametrize("anchor,fmt", list(itertools.product(("center", "start", "end"), FORMATS)))
def test_crop_to_match(anchor, fmt):
    x = make_input(2, 3, fmt, size=9)  # spatial (9, 10)
    ref = make_input(2, 5, fmt, size=4)  # spatial (4, 5)
    y = kc.CropToMatch(anchor=anchor, data_format=fmt)([x, ref])
    b = {"center": (2, 2), "start": (0, 0), "end": (5, 5)}[anchor]
    xl = oracle.to_last(x, fmt)
    expected = oracle.from_last(xl[:, b[0]:b[0] + 4, b[1]:b[1] + 5], fmt)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), expected)
    with pytest.raises(ValueError, match=r"CropToMatch: the reference is larger than the input"):
        kc.CropToMatch(data_format=fmt)([ref, x])


@pytest.mark.parametrize("make,shape,message", [
    (lambda: kc.Cropping2D(-1), None, r"Cropping2D: cropping must not be negative, got \(\(-1, -1\), \(-1, -1\)\)"),
    (lambda: kc.Cropping1D((3, 3)), (1, 6, 2), r"Cropping1D: cropping \(3, 3\) removes all of the input"),
    (lambda: kc.Cropping2D(((0, 0), (4, 4))), (1, 9, 8, 2), r"Cropping2D: cropping \(\(0, 0\), \(4, 4\)\) removes all"),
    (lambda: kc.Padding2D(5, mode="reflect"), (1, 5, 9, 2), r"Padding2D: 'reflect' padding \(5, 5\) must be smaller than the input length 5"),
    (lambda: kc.Padding1D(1, mode="wrap"), None, r"Padding1D: mode must be one of"),
    (lambda: kc.UpSampling2D(0), None, r"UpSampling2D: size must be a positive number or a tuple of 2 positive numbers, got 0"),
    (lambda: kc.UpSampling3D(2, interpolation="bicubic"), None, r"UpSampling3D: interpolation must be one of \('nearest', 'trilinear'\), got 'bicubic'"),
    (lambda: kc.UpSampling2D(2, interpolation="bilinear", exclude_outside=True), None, r"UpSampling2D: exclude_outside=True applies to interpolation='bicubic' only, got 'bilinear'"),
    (lambda: kc.UpSampling1D(float("nan")), None, r"UpSampling1D: size must be a positive number"),
    (lambda: kc.CropToMatch(anchor="middle"), None, r"CropToMatch: anchor must be one of"),
])
def test_validation_messages(make, shape, message):
    with pytest.raises((ValueError, TypeError), match=message):
        layer = make()
        layer.build(shape)


UNKNOWN_CHANNELS = [
    ("UpSampling1D", lambda df: kc.UpSampling1D(2, data_format=df), 1),
    ("UpSampling2D-bilinear", lambda df: kc.UpSampling2D(2, interpolation="bilinear",
                                                          data_format=df), 2),
    ("UpSampling2D-bicubic-1.5", lambda df: kc.UpSampling2D(1.5, interpolation="bicubic",
                                                             data_format=df), 2),
    ("UpSampling3D", lambda df: kc.UpSampling3D(2, data_format=df), 3),
    ("Cropping1D", lambda df: kc.Cropping1D((1, 0), data_format=df), 1),
    ("Cropping2D", lambda df: kc.Cropping2D(1, data_format=df), 2),
    ("ZeroPadding3D", lambda df: kc.ZeroPadding3D(1, data_format=df), 3),
    ("Padding2D-reflect", lambda df: kc.Padding2D(((1, 0), (2, 1)), mode="reflect",
                                                  data_format=df), 2),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name,make,rank", UNKNOWN_CHANNELS, ids=[c[0] for c in UNKNOWN_CHANNELS])
def test_unknown_channel_dim_is_fine_without_weights(name, make, rank, data_format):
    """Reshaping layers have no weights, so (as Keras's) they take an input whose channel
    dim is unknown: same output as with the channels known, shape inference agrees."""
    spatial = (5,) * rank
    unknown = spatial + (None,) if data_format == "channels_last" else (None,) + spatial
    x = keras.Input(unknown)
    layer = make(data_format)
    symbolic = layer(x)
    model = keras.Model(x, symbolic)
    data = rand((2,) + tuple(d or 3 for d in unknown), rank)
    got = keras.ops.convert_to_numpy(model(data))
    want = keras.ops.convert_to_numpy(make(data_format)(data))
    np.testing.assert_array_equal(got, want)
    channel_axis = -1 if data_format == "channels_last" else 1
    assert symbolic.shape[channel_axis] is None
    assert tuple(d for i, d in enumerate(symbolic.shape) if i not in (0, channel_axis % len(
        symbolic.shape))) == tuple(d for i, d in enumerate(got.shape) if i not in (
            0, channel_axis % got.ndim))


def test_layers_with_weights_still_need_the_channel_dim():
    with pytest.raises(ValueError, match=r"Conv2D: the channel dimension of the input must be "
                                         r"known, got shape \(None, 5, 5, None\)"):
        kc.Conv2D(2, 3)(keras.Input((5, 5, None)))


@pytest.mark.parametrize("interpolation", ["lanczos3", "lanczos5"])
@pytest.mark.parametrize("size,data_format", [((2, 2), "channels_last"), ((3, 2), "channels_first"),
                                              ((1.5, 2.5), "channels_last")])
def test_lanczos_matches_jax_image_resize(interpolation, size, data_format):
    """Lanczos as keras.ops.image.resize computes it (JAX's scale_and_translate, which
    TensorFlow's tf.image.resize matches; Keras's torch backend has no Lanczos): the
    reference is jax.image.resize on the same data, on every backend."""
    import jax

    x = rand((2, 5, 6, 3), 9)
    layer = kc.UpSampling2D(size, interpolation=interpolation, data_format=data_format)
    data = x if data_format == "channels_last" else np.transpose(x, (0, 3, 1, 2))
    got = keras.ops.convert_to_numpy(layer(data))
    if data_format == "channels_first":
        got = np.transpose(got, (0, 2, 3, 1))
    out = (int(5 * size[0]), int(6 * size[1]))
    want = np.asarray(jax.image.resize(x, (2,) + out + (3,), method=interpolation,
                                       antialias=False))
    assert got.shape == want.shape
    assert_close(got, want)
    assert tuple(layer.compute_output_shape(data.shape)) == got.shape if \
        data_format == "channels_last" else True


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="Keras's torch backend has no Lanczos resize to compare with")
def test_lanczos_equals_keras_upsampling2d():
    x = rand((2, 4, 5, 3), 10)
    for interpolation in ("lanczos3", "lanczos5"):
        ours = kc.UpSampling2D(2, interpolation=interpolation)(x)
        theirs = keras.layers.UpSampling2D(2, interpolation=interpolation)(x)
        assert_close(ours, keras.ops.convert_to_numpy(theirs))


def test_lanczos_refuses_align_corners_and_export(tmp_path):
    with pytest.raises(ValueError, match=r"UpSampling2D: align_corners applies to linear and "
                                         r"cubic interpolation, not 'lanczos3'"):
        kc.UpSampling2D(2, interpolation="lanczos3", align_corners=True)
    x = keras.Input((4, 4, 2))
    model = keras.Model(x, kc.UpSampling2D(2, interpolation="lanczos5", name="up")(x))
    with pytest.raises(Exception, match=r"interpolation 'lanczos5' has no exact ONNX Resize"):
        kc.export_onnx(model, tmp_path / "m.onnx", method="native")
