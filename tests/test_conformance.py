"""The drop-in contract, in one place: for every `keras.layers` class keras_convx shadows,
the same constructor call gives the same signature, config (keys and values), weights
(names and shapes), output shape and values; configs load across both ways.

The per-family value grids (every padding, stride, dilation, layout and group count
against Keras's layers) are in test_conv.py, test_family.py and test_reshaping.py; this
module checks the contract class by class, with Keras's own docstring examples.
"""

import inspect
import re
import types

import keras
import numpy as np
import pytest

import keras_convx as kc
from helpers import BACKEND, assert_close, rand
from keras_convx.conversion import SHADOWED

# Arguments keras_convx adds to each shadowed class (all keyword-only in spirit: they come
# after Keras's own parameters, so positional calls mean the same thing).
EXTENSIONS = {
    "Conv": {"padding_mode", "lora_rank", "lora_alpha"},
    "DepthwiseConv": {"padding_mode"},
    "SeparableConv": {"padding_mode"},
    "Transpose": {"groups", "output_size"},
    "Cropping1D": {"data_format"},
    "UpSampling1D": {"data_format", "interpolation", "align_corners"},
    "UpSampling2D": {"align_corners", "exclude_outside"},
    "UpSampling3D": {"interpolation", "align_corners"},
}


def _extensions(name):
    if name.endswith("Transpose"):
        return EXTENSIONS["Transpose"]
    return EXTENSIONS.get(name) or EXTENSIONS.get(name[:-2], set())


def _params(cls):
    return {n: p for n, p in inspect.signature(cls).parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


@pytest.mark.parametrize("name", SHADOWED)
def test_signature_is_keras_plus_extensions(name):
    ours, theirs = _params(getattr(kc, name)), _params(getattr(keras.layers, name))
    assert not any(p.kind == p.VAR_POSITIONAL
                   for p in inspect.signature(getattr(kc, name)).parameters.values())
    assert set(theirs) <= set(ours), f"missing: {set(theirs) - set(ours)}"
    assert set(ours) - set(theirs) == _extensions(name)
    # Keras's parameters in Keras's order: a positional call means the same.
    assert [n for n in ours if n in theirs] == list(theirs)
    # Required parameters are the same ones.
    assert {n for n, p in ours.items() if p.default is p.empty} == \
        {n for n, p in theirs.items() if p.default is p.empty}
    assert getattr(kc, name).rank == _rank(name)


def test_abstract_bases_refuse_to_build():
    with pytest.raises(TypeError, match="BaseConv is abstract"):
        kc.BaseConv(4, 3)


REQUIRED = {"Conv": (4, 3), "DepthwiseConv": (3,), "SeparableConv": (4, 3),
            "Transpose": (4, 3)}


def _required(name):
    if name.endswith("Transpose"):
        return REQUIRED["Transpose"]
    return REQUIRED.get(name[:-2], ())


def _rank(name):
    return int(re.search(r"(\d)D", name).group(1))


def _input_shape(name, channels=4):
    rank = _rank(name)
    return (2,) + (6,) * rank + (channels,)


def _plain(config):
    return {k: v for k, v in config.items() if k != "name"}


def _check_pair(ours, theirs, x):
    """Same weights (names, shapes), output shape and values once the weights match."""
    y_ref = keras.ops.convert_to_numpy(theirs(x))
    ours.build(x.shape)
    assert [(w.path.split("/")[-1], tuple(w.shape)) for w in ours.weights] == \
        [(w.path.split("/")[-1], tuple(w.shape)) for w in theirs.weights]
    if theirs.weights:
        theirs.set_weights([rand(w.shape, i + 3) for i, w in enumerate(theirs.get_weights())])
        y_ref = keras.ops.convert_to_numpy(theirs(x))
        ours.set_weights(theirs.get_weights())
    y = ours(x)
    assert tuple(y.shape) == y_ref.shape == ours.compute_output_shape(x.shape)
    assert_close(y, y_ref)


@pytest.mark.parametrize("name", SHADOWED)
def test_defaults_give_keras_config_and_outputs(name):
    ours, theirs = getattr(kc, name)(*_required(name)), getattr(keras.layers, name)(*_required(name))
    assert _plain(ours.get_config()) == _plain(theirs.get_config())
    _check_pair(ours, theirs, rand(_input_shape(name), 1))


# Keras's documented arguments, one call each (values are non-default); channels_first
# conv calls are left to the torch and JAX runs (Keras's own can't run them on TF's CPU).
def _documented_calls():
    common = dict(activation="relu", use_bias=False, bias_initializer="ones",
                  activity_regularizer="l2", bias_constraint="non_neg")
    kernel = lambda p: {f"{p}_initializer": "he_normal", f"{p}_regularizer": "l1",  # noqa: E731
                        f"{p}_constraint": "max_norm"}
    calls = []
    for rank in (1, 2, 3):
        calls += [
            (f"Conv{rank}D", (4, 3), dict(strides=2, padding="same", **kernel("kernel"))),
            (f"Conv{rank}D", (4, 2), dict(dilation_rate=2, groups=2, **common)),
            (f"Conv{rank}D", (4, 3), dict(data_format="channels_first")),
            (f"Conv{rank}DTranspose", (4, 3), dict(strides=2, padding="same", output_padding=1)),
            (f"Conv{rank}DTranspose", (2, 2), dict(dilation_rate=2, **common, **kernel("kernel"))),
            (f"Conv{rank}DTranspose", (3, 3), dict(strides=2, data_format="channels_first")),
            (f"UpSampling{rank}D", (), dict(size=3)),
            (f"ZeroPadding{rank}D", (), dict(padding=2)),
            (f"Cropping{rank}D", (), dict(cropping=1)),
        ]
        if rank < 3:
            calls += [
                (f"DepthwiseConv{rank}D", (3,), dict(strides=2, padding="same", depth_multiplier=2,
                                                    **kernel("depthwise"))),
                (f"DepthwiseConv{rank}D", (2,), dict(dilation_rate=2, **common)),
                (f"SeparableConv{rank}D", (4, 3), dict(depth_multiplier=2, padding="same",
                                                      **kernel("depthwise"), **kernel("pointwise"))),
                (f"SeparableConv{rank}D", (4, 2), dict(strides=2, **common)),
            ]
        if rank > 1:
            calls.append((f"ZeroPadding{rank}D", (), dict(padding=((1, 0),) * rank,
                                                          data_format="channels_first")))
            calls.append((f"UpSampling{rank}D", (), dict(size=2, data_format="channels_first")))
    calls.append(("UpSampling2D", (), dict(size=(2, 3), interpolation="bilinear")))
    calls.append(("UpSampling2D", (), dict(size=2, interpolation="bicubic")))
    for name, args, kwargs in calls:
        yield pytest.param(name, args, kwargs,
                           id=f"{name}-{'-'.join(f'{k}={v}' for k, v in kwargs.items())}")


# a third on JAX (eager JAX compiles each op per shape)
@pytest.mark.thin_on_jax(3)
@pytest.mark.parametrize("name,args,kwargs", list(_documented_calls()))
def test_documented_arguments_match_keras(name, args, kwargs):
    weighted = bool(args)
    if BACKEND == "tensorflow" and weighted and kwargs.get("data_format") == "channels_first":
        pytest.skip("Keras's channels_first convolutions need a GPU on TF")
    if BACKEND == "jax" and weighted and _rank(name) == 3:
        pytest.skip("the 3-D convolutions' contract runs on TF and torch (CI time on JAX)")
    if BACKEND == "tensorflow" and "Transpose" in name and kwargs.get("dilation_rate", 1) > 1:
        pytest.skip("Keras's dilated transposed convolutions don't run on TF's CPU")
    ours, theirs = getattr(kc, name)(*args, **kwargs), getattr(keras.layers, name)(*args, **kwargs)
    assert _plain(ours.get_config()) == _plain(theirs.get_config())
    # Each config loads into the other class and gives the same config back.
    assert _plain(type(ours).from_config(theirs.get_config()).get_config()) == \
        _plain(theirs.get_config())
    assert _plain(type(theirs).from_config(ours.get_config()).get_config()) == \
        _plain(theirs.get_config())
    shape = _input_shape(name)
    if kwargs.get("data_format") == "channels_first":
        shape = (shape[0], shape[-1]) + shape[1:-1]
    if kwargs.get("interpolation") == "bicubic" and BACKEND != "torch":
        # A deliberate difference: Keras's bicubic follows each backend (a = -0.5 on TF and
        # JAX, -0.75 on torch); ours is PyTorch's and ONNX Resize's a = -0.75 everywhere.
        x = rand(shape, 2)
        gap = np.max(np.abs(keras.ops.convert_to_numpy(ours(x) - theirs(x))))
        assert gap > 1e-2, "Keras's bicubic now matches a = -0.75: drop the difference"
        return
    _check_pair(ours, theirs, rand(shape, 2))


def _docstring_example(cls_name):
    """The code lines of the Example in keras.layers.<cls_name>'s docstring."""
    lines = [line.strip()[4:] for line in getattr(keras.layers, cls_name).__doc__.splitlines()
             if line.strip().startswith(">>> ")]
    return [line for line in lines if "=" in line and not line.startswith("#")]


class _Recorder:
    """Stands in for `keras.layers` in an example: makes the classes of `module` and
    records the layers made."""

    def __init__(self, module):
        self.module, self.made = module, []

    def __getattr__(self, name):
        def make(*args, **kwargs):
            self.made.append(getattr(self.module, name)(*args, **kwargs))
            return self.made[-1]
        return make


def _run_example(lines, module):
    layers = _Recorder(module)
    rng = np.random.default_rng(0)
    fake_np = types.SimpleNamespace(
        random=types.SimpleNamespace(rand=lambda *s: rng.random(s).astype("float32")),
        arange=lambda n: np.arange(n, dtype="float32"), prod=np.prod, ones=np.ones)
    scope = {"np": fake_np, "keras": types.SimpleNamespace(layers=layers)}
    exec("\n".join(lines), scope)  # noqa: S102 - Keras's own docstring examples
    return scope, layers.made


# Keras 3.15's own examples that Keras refuses: they pass `padding=2` positionally, which
# keras.layers rejects (AttributeError) and keras_convx takes as explicit zero padding.
KERAS_EXAMPLE_REFUSED = {"DepthwiseConv1D", "SeparableConv1D", "SeparableConv2D"}


@pytest.mark.parametrize("name", SHADOWED)
def test_keras_docstring_example(name):
    lines = _docstring_example(name)
    assert lines, f"keras.layers.{name} has no example to run"
    ours_scope, ours = _run_example(lines, kc)
    assert len(ours) == 1
    if name in KERAS_EXAMPLE_REFUSED:
        with pytest.raises((ValueError, TypeError, AttributeError)):
            _run_example(lines, keras.layers)
        # What ours computes: Keras's layer, valid padding, on the zero-padded input.
        config = dict(ours[0].get_config(), padding="valid")
        config.pop("name")
        theirs = [getattr(keras.layers, name).from_config(config)]
        pad = getattr(keras.layers, f"ZeroPadding{ours[0].rank}D")
        padded = pad(ours[0].padding[0] if ours[0].rank == 1 else ours[0].padding)
        theirs_scope = {"x": ours_scope["x"]}
        theirs_scope["y"] = theirs[0](padded(ours_scope["x"]))
    else:
        theirs_scope, theirs = _run_example(lines, keras.layers)
        assert _plain(ours[0].get_config()) == _plain(theirs[0].get_config())
        np.testing.assert_array_equal(np.asarray(ours_scope["x"]), np.asarray(theirs_scope["x"]))
    if theirs[0].weights:  # same weights, then the example's output again
        theirs[0].set_weights([rand(w.shape, i) for i, w in enumerate(theirs[0].get_weights())])
        ours[0].set_weights(theirs[0].get_weights())
        ours_scope["y"] = ours[0](ours_scope["x"])
        theirs_scope["y"] = theirs[0](theirs_scope["x"] if name not in KERAS_EXAMPLE_REFUSED
                                      else padded(ours_scope["x"]))
    assert tuple(ours_scope["y"].shape) == tuple(theirs_scope["y"].shape)
    assert_close(ours_scope["y"], keras.ops.convert_to_numpy(theirs_scope["y"]))


# The README's "Deliberate differences from Keras", each shown against Keras.

def test_int_padding_is_explicit_padding_where_keras_refuses_it():
    x = rand((2, 9, 3), 4)
    with pytest.raises((ValueError, TypeError, AttributeError)):
        keras.layers.Conv1D(4, 3, padding=2)(x)
    for padding in (2, (2,)):
        ours = kc.Conv1D(4, 3, padding=padding)
        theirs = keras.layers.Conv1D(4, 3)
        y_ref = keras.ops.convert_to_numpy(theirs(np.pad(x, ((0, 0), (2, 2), (0, 0)))))
        ours.build(x.shape)
        ours.set_weights(theirs.get_weights())
        assert_close(ours(x), y_ref)


def test_output_padding_is_checked_against_dilation_too():
    x = rand((2, 5, 2), 5)
    with pytest.raises(ValueError, match="output_padding"):
        keras.layers.Conv1DTranspose(1, 3, dilation_rate=2, output_padding=1)(x)
    y = kc.Conv1DTranspose(1, 3, dilation_rate=2, output_padding=1)(x)
    assert tuple(y.shape) == (2, (5 - 1) + 2 * (3 - 1) + 1 + 1, 1)  # PyTorch's length
    with pytest.raises(ValueError, match=r"smaller than max\(strides, dilation_rate\)"):
        kc.Conv1DTranspose(1, 3, dilation_rate=2, output_padding=2)
