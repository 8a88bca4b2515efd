"""`kc.convert`: whole models onto keras_convx layers and back, outputs identical."""

import json

import keras
import numpy as np
import pytest

import keras_convx as kc
import oracle
from helpers import BACKEND, rand
from keras_convx.conversion import copy_weights, load_h5
from keras_convx.model_config.writer import to_dict
from test_applications import build

# The smallest constructor of the families whose layers and graphs differ most: nested
# Sequential blocks, LayerScale and `x + y` nodes (ConvNeXt), Normalization and SE gates
# (EfficientNets), `x * (1 / 6)` nodes (MobileNetV3), depthwise, separable, pads and
# pre-activation. The other six families (DenseNet, EfficientNetV2, InceptionV3,
# InceptionResNetV2, NASNet, ResNet) cost 20-70 s each here (CI time):
# benchmarks/convert_apps.py (RESULTS.md section 9) runs all 40 constructors on each
# backend. Torch runs the cheaper half (each model costs it 2-2.5x TF's time), JAX the
# first (eager JAX compiles every op): the conversions are config-level, backend-agnostic.
FAMILIES = ["VGG16", "ConvNeXtTiny", "EfficientNetB0", "MobileNet", "MobileNetV2",
            "MobileNetV3Small", "ResNet50V2", "Xception"]
ON_TORCH = ["VGG16", "ConvNeXtTiny", "MobileNet", "MobileNetV3Small"]
# keras.applications' own layers outside the config allowlist: the YAML needs them
# registered, as a user would (kc.register_layer)
APPLICATION_LAYERS = {"ConvNeXt": "convnext.LayerScale",
                      "InceptionResNetV2": "inception_resnet_v2.CustomScaleLayer"}


def _ours(layer):
    return type(layer).__module__.startswith("keras_convx.")


def _register_application_layer(name, monkeypatch):
    import importlib

    from keras_convx.model_config import builder

    for family, path in APPLICATION_LAYERS.items():
        if name.startswith(family):
            module, cls = path.rsplit(".", 1)
            monkeypatch.setitem(builder._USER_TYPES, cls, getattr(
                importlib.import_module(f"keras.src.applications.{module}"), cls))


@pytest.mark.thin_on_jax(len(FAMILIES))
@pytest.mark.parametrize("name", ON_TORCH if BACKEND == "torch" else FAMILIES)
def test_applications_onto_keras_convx_back_and_through_yaml(name, monkeypatch):
    """kc.convert both ways, and keras.applications -> YAML -> kc.build_model with the
    weights moved over by layer name (the YAML names every layer as Keras did): the
    outputs of all three equal the original's bit for bit."""
    model = build(name)
    x = rand((2,) + tuple(model.inputs[0].shape[1:]), 1) * 60 + 120
    want = keras.ops.convert_to_numpy(model(x, training=False))
    converted = kc.convert(model)
    shadowed = [layer for layer in model._flatten_layers(include_self=False)
                if type(layer).__name__ in kc.convert.__globals__["SHADOWED"]]
    assert shadowed and all(_ours(converted.get_layer(layer.name)) for layer in shadowed
                            if layer in model.layers)
    back = kc.convert(converted, to="keras")
    assert not any(_ours(layer) for layer in back._flatten_layers(include_self=False))
    for other in (converted, back):
        assert [layer.name for layer in other.layers] == [layer.name for layer in model.layers]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(other(x, training=False)), want)
    _register_application_layer(name, monkeypatch)
    rebuilt = kc.build_model(kc.to_yaml(model))
    assert rebuilt.count_params() == model.count_params()
    copy_weights(model, rebuilt)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rebuilt(x, training=False)), want)


def _yaml_round_trip(model, x):
    rebuilt = kc.build_model(kc.to_yaml(model))
    copy_weights(model, rebuilt)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rebuilt(x)),
                                  keras.ops.convert_to_numpy(model(x)))
    return rebuilt


def test_to_yaml_writes_keras_ops_nodes_as_the_layers_that_compute_them():
    a = keras.Input((5, 5, 3), name="a")
    b = keras.Input((5, 5, 3), name="b")
    h = keras.layers.Conv2D(3, 3, padding="same", name="conv")(a)
    terms = [h + b, h - b, b - h, h * b, keras.ops.maximum(h, b), keras.ops.minimum(h, b),
             h + 3.0, h - 2.0, 2.0 - h, h * (1.0 / 6.0), 0.5 * h]
    model = keras.Model([a, b], keras.layers.Concatenate(name="cat")(terms))
    config = to_dict(model)
    kinds = [entry["type"] for entry in config["layers"] if entry["name"] not in ("conv", "cat")]
    assert kinds == ["Add", "Subtract", "Subtract", "Multiply", "Maximum", "Minimum"] + \
        ["Rescaling"] * 5
    scales = [entry.get("args") for entry in config["layers"][7:12]]
    assert scales == [{"scale": 1.0, "offset": 3.0}, {"scale": 1.0, "offset": -2.0},
                      {"scale": -1.0, "offset": 2.0}, {"scale": 1.0 / 6.0}, {"scale": 0.5}]
    x = [rand((2, 5, 5, 3), 7), rand((2, 5, 5, 3), 8)]
    _yaml_round_trip(model, x)


@pytest.mark.parametrize("make, what", [
    (lambda h: h / 3.0, "TrueDivide"),  # x / 3 and x * (1 / 3) differ in the last bit
    (lambda h: h + keras.ops.ones((1, 1, 3)), "Add"),  # a constant tensor
    (lambda h: h + keras.layers.GlobalAveragePooling2D(keepdims=True)(h), "Add"),  # broadcast
], ids=["divide-by-number", "add-constant-tensor", "add-broadcast"])
def test_to_yaml_refuses_keras_ops_nodes_no_layer_computes_exactly(make, what):
    x = keras.Input((4, 4, 3))
    model = keras.Model(x, make(keras.layers.Conv2D(3, 1, name="conv")(x)))
    with pytest.raises(ValueError, match=rf"keras\.ops\.{what} call that no allowlisted layer "
                                         rf"computes exactly"):
        kc.to_yaml(model)


def test_to_yaml_writes_nested_models_inline():
    inner = keras.Sequential([keras.layers.DepthwiseConv2D(3, padding="same", name="dw"),
                              keras.layers.BatchNormalization(name="bn")], name="block")
    i = keras.Input((6, 6, 4), name="i")
    branch = keras.Model(i, keras.layers.Conv2D(4, 1, name="pw")(i) * 2.0, name="branch")
    x = keras.Input((6, 6, 4), name="x")
    h = keras.layers.ZeroPadding2D(1, name="pad")(x)
    h = keras.layers.Cropping2D(1, name="crop")(h)
    model = keras.Model(x, keras.layers.Add(name="sum")([inner(h), branch(h)]))
    config = to_dict(model)
    assert [e["name"] for e in config["layers"]] == ["pad", "crop", "dw", "bn", "pw",
                                                      config["layers"][5]["name"], "sum"]
    assert config["layers"][4]["inputs"] == "crop"  # the nested model's input, renamed
    assert config["layers"][6]["inputs"] == ["bn", config["layers"][5]["name"]]
    for layer in model._flatten_layers(include_self=False):
        if layer.weights:
            layer.set_weights([rand(w.shape, 3) + 2 for w in layer.get_weights()])
    _yaml_round_trip(model, rand((2, 6, 6, 4), 4))
    converted = kc.convert(model)  # into the nested models too
    assert isinstance(converted.get_layer("block").get_layer("dw"), kc.DepthwiseConv2D)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(converted(rand((2, 6, 6, 4), 4))),
                                  keras.ops.convert_to_numpy(model(rand((2, 6, 6, 4), 4))))


def test_arguments_constraints_and_regularizers_carry_over():
    model = keras.Sequential([
        keras.Input((9, 9, 4)),
        keras.layers.ZeroPadding2D(((1, 0), (0, 2)), name="pad"),
        keras.layers.Conv2D(6, 3, strides=2, dilation_rate=1, groups=2, name="conv",
                            kernel_constraint=keras.constraints.MaxNorm(2.0),
                            kernel_regularizer=keras.regularizers.L2(1e-3)),
        keras.layers.Conv2DTranspose(3, 3, strides=2, output_padding=1, name="up"),
        keras.layers.UpSampling2D(2, interpolation="bilinear", name="resize"),
    ])
    converted = kc.convert(model)
    assert isinstance(converted, keras.Sequential)
    conv = converted.get_layer("conv")
    assert isinstance(conv, kc.Conv2D) and conv.groups == 2 and conv.strides == (2, 2)
    assert isinstance(conv.kernel_constraint, keras.constraints.MaxNorm)
    assert isinstance(conv.kernel_regularizer, keras.regularizers.L2)
    x = rand((2, 9, 9, 4), 2)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(converted(x)),
                                  keras.ops.convert_to_numpy(model(x)))


def test_back_to_keras_lists_every_layer_keras_cannot_express():
    x = keras.Input((8, 8, 8, 2))
    h = kc.Conv3D(4, 3, padding="same", padding_mode="reflect", name="reflect")(x)
    h = kc.DepthwiseConv3D(3, name="depthwise3d")(h)
    h = kc.Conv3D(4, 1, name="plain")(h)  # this one is fine
    model = keras.Model(x, h)
    with pytest.raises(ValueError) as info:
        kc.convert(model, to="keras")
    message = str(info.value)
    assert "reflect (Conv3D)" in message and "padding_mode" in message
    assert "depthwise3d (DepthwiseConv3D): no keras.layers equivalent" in message
    assert "plain" not in message


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"convert: to must be 'keras_convx' or 'keras', got "
                                         r"'torch'"):
        kc.convert(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), to="torch")


# ---- Keras 2 `.h5` files: the seed-era users -------------------------------------------
# Written here byte for byte in the layout Keras 2's `model.save("m.h5")` wrote (TF 2.21
# ships Keras 3 only and tf_keras isn't installed): root attributes `keras_version`,
# `backend` and `model_config` (JSON of Keras 2's configs: lists for tuples, `"dtype":
# "float32"`, InputLayer's `batch_input_shape`, BatchNormalization's `axis` as `[3]`,
# `groups` on DepthwiseConv2D, `inbound_nodes` as `[[[layer, node, tensor, kwargs]]]`),
# and a `model_weights` group with `layer_names` and per layer `weight_names`
# ("conv2d/kernel:0") naming datasets in Keras 2's weight order.

def _init(name, **config):
    return {"class_name": name, "config": config}


def _conv_config(name, kernel_size, *, filters=None, strides=1, padding="valid",
                 activation="linear", era="2.13"):
    config = {"name": name, "trainable": True, "dtype": "float32",
              "kernel_size": [kernel_size] * 2, "strides": [strides] * 2, "padding": padding,
              "data_format": "channels_last", "dilation_rate": [1, 1], "activation": activation,
              "use_bias": True, "bias_initializer": _init("Zeros"), "bias_regularizer": None,
              "activity_regularizer": None, "bias_constraint": None}
    if era == "2.13":
        config["groups"] = 1  # tf.keras 2.3+ wrote it, DepthwiseConv2D's included
    if filters is not None:
        config.update(filters=filters, kernel_initializer=_init("GlorotUniform", seed=None),
                      kernel_regularizer=None, kernel_constraint=None)
    return config


def _depthwise_config(name, kernel_size, multiplier, **kwargs):
    return {**_conv_config(name, kernel_size, **kwargs), "depth_multiplier": multiplier,
            "depthwise_initializer": _init("GlorotUniform", seed=None),
            "depthwise_regularizer": None, "depthwise_constraint": None}


def _separable_config(name, kernel_size, filters, **kwargs):
    config = {**_depthwise_config(name, kernel_size, 1, **kwargs), "filters": filters,
              "pointwise_initializer": _init("GlorotUniform", seed=None),
              "pointwise_regularizer": None, "pointwise_constraint": None}
    config.pop("groups", None)  # SeparableConv2D never wrote it
    return config


def _batch_norm_config(name, axis):
    return {"name": name, "trainable": True, "dtype": "float32", "axis": axis,
            "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True,
            "beta_initializer": _init("Zeros"), "gamma_initializer": _init("Ones"),
            "moving_mean_initializer": _init("Zeros"),
            "moving_variance_initializer": _init("Ones"), "beta_regularizer": None,
            "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None}


def _plain_config(name, **config):
    return {"name": name, "trainable": True, "dtype": "float32", **config}


def _dense_config(name, units, activation):
    return _plain_config(name, units=units, activation=activation, use_bias=True,
                         kernel_initializer=_init("GlorotUniform", seed=None),
                         bias_initializer=_init("Zeros"), kernel_regularizer=None,
                         bias_regularizer=None, activity_regularizer=None,
                         kernel_constraint=None, bias_constraint=None)


def _weights(rng, *shapes, batch_norm=False):
    if batch_norm:  # gamma, beta, moving_mean, moving_variance
        n, = shapes
        return [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.5, n),
                rng.uniform(0.5, 2.0, n)]
    return [rng.normal(0, 0.3, shape) for shape in shapes]


def _functional_keras2():
    """tf.keras 2.13: a Functional model with a branch and a merge."""
    def node(*sources):
        return [[[source, 0, 0, {}] for source in sources]]

    rows = [  # (class, config, inbound layers, weights)
        ("InputLayer", {"batch_input_shape": [None, 12, 12, 3], "dtype": "float32",
                        "sparse": False, "ragged": False, "name": "input_1"}, (), ()),
        ("ZeroPadding2D", _plain_config("zero_padding2d", padding=[[1, 1], [1, 1]],
                                        data_format="channels_last"), ("input_1",), ()),
        ("Conv2D", _conv_config("conv2d", 3, filters=8, strides=2, activation="relu"),
         ("zero_padding2d",), ((3, 3, 3, 8), (8,))),
        ("BatchNormalization", _batch_norm_config("batch_normalization", [3]), ("conv2d",),
         ("bn", 8)),
        ("DepthwiseConv2D", _depthwise_config("depthwise_conv2d", 3, 2, padding="same"),
         ("batch_normalization",), ((3, 3, 8, 2), (16,))),
        ("SeparableConv2D", _separable_config("separable_conv2d", 3, 8, padding="same",
                                              activation="relu"),
         ("depthwise_conv2d",), ((3, 3, 16, 1), (1, 1, 16, 8), (8,))),
        ("Conv2DTranspose", {**_conv_config("conv2d_transpose", 3, filters=4, strides=2,
                                            padding="same"), "output_padding": None},
         ("separable_conv2d",), ((3, 3, 4, 8), (4,))),
        ("UpSampling2D", _plain_config("up_sampling2d", size=[2, 2], interpolation="bilinear",
                                       data_format="channels_last"), ("batch_normalization",),
         ()),
        ("Conv2D", _conv_config("conv2d_1", 1, filters=4), ("up_sampling2d",),
         ((1, 1, 8, 4), (4,))),
        ("Add", _plain_config("add"), ("conv2d_transpose", "conv2d_1"), ()),
        ("MaxPooling2D", _plain_config("max_pooling2d", pool_size=[2, 2], padding="valid",
                                       strides=[2, 2], data_format="channels_last"),
         ("add",), ()),
        ("GlobalAveragePooling2D", _plain_config("global_average_pooling2d",
                                                 data_format="channels_last", keepdims=False),
         ("max_pooling2d",), ()),
        ("Dense", _dense_config("dense", 5, "softmax"), ("global_average_pooling2d",),
         ((4, 5), (5,))),
    ]
    layers = [{"class_name": cls, "config": config, "name": config["name"],
               "inbound_nodes": node(*sources) if sources else []}
              for cls, config, sources, _ in rows]
    config = {"class_name": "Functional", "config": {
        "name": "model", "layers": layers, "input_layers": [["input_1", 0, 0]],
        "output_layers": [["dense", 0, 0]]}}
    return "2.13.1", config, [(config["name"], shapes) for _, config, _, shapes in rows]


def _sequential_keras2():
    """Standalone Keras 2.2.4: a Sequential model, `batch_input_shape` on its first layer."""
    first = {**_conv_config("conv2d_1", 3, filters=6, padding="same", activation="relu",
                            era="2.2"), "batch_input_shape": [None, 10, 10, 2]}
    rows = [
        ("Conv2D", first, ((3, 3, 2, 6), (6,))),
        ("BatchNormalization", _batch_norm_config("batch_normalization_1", -1), ("bn", 6)),
        ("MaxPooling2D", _plain_config("max_pooling2d_1", pool_size=[2, 2], padding="valid",
                                       strides=[2, 2], data_format="channels_last"), ()),
        ("UpSampling2D", _plain_config("up_sampling2d_1", size=[2, 2], interpolation="nearest",
                                       data_format="channels_last"), ()),
        ("Flatten", _plain_config("flatten_1", data_format="channels_last"), ()),
        ("Dense", _dense_config("dense_1", 3, "linear"), ((600, 3), (3,))),
    ]
    config = {"class_name": "Sequential", "config": {
        "name": "sequential_1",
        "layers": [{"class_name": cls, "config": config} for cls, config, _ in rows]}}
    return "2.2.4", config, [(config["name"], shapes) for _, config, shapes in rows]


def _write_keras2_h5(path, version, model_config, layer_shapes, seed=0):
    """Writes the file; returns {layer name: [arrays]} as stored."""
    import h5py

    rng = np.random.default_rng(seed)
    stored = {}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = version
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(model_config).encode("utf8")
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode("utf8") for name, _ in layer_shapes]
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = version.encode("utf8")
        for name, shapes in layer_shapes:
            layer_group = group.create_group(name)
            if not shapes:
                layer_group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            batch_norm = shapes[0] == "bn"
            values = _weights(rng, *(shapes[1:] if batch_norm else shapes),
                              batch_norm=batch_norm)
            kinds = KERAS2_WEIGHT_NAMES[len(values), batch_norm]
            names = [f"{name}/{kind}:0".encode("utf8") for kind in kinds]
            layer_group.attrs["weight_names"] = names
            for weight_name, value in zip(names, values):
                layer_group.create_dataset(weight_name.decode(), data=value.astype("float32"))
            stored[name] = [value.astype("float32") for value in values]
    return stored


# Keras 2's weight names in its order, by (count, batch norm); a separable conv has three,
# a depthwise conv names its kernel depthwise_kernel (the order is what matters to Keras 3)
KERAS2_WEIGHT_NAMES = {(2, False): ("kernel", "bias"),
                       (3, False): ("depthwise_kernel", "pointwise_kernel", "bias"),
                       (4, True): ("gamma", "beta", "moving_mean", "moving_variance")}


@pytest.mark.parametrize("era", ["tf.keras-2.13-functional", "keras-2.2.4-sequential"])
def test_keras2_h5_onto_keras_convx(era, tmp_path):
    version, config, layer_shapes = (_functional_keras2() if "functional" in era
                                     else _sequential_keras2())
    path = tmp_path / "m.h5"
    stored = _write_keras2_h5(path, version, config, layer_shapes)
    converted = kc.convert(str(path))  # loads the file, then converts
    assert isinstance(converted, keras.Sequential) == ("sequential" in era)
    kinds = {type(layer).__name__: _ours(layer) for layer in converted.layers}
    assert all(ours for name, ours in kinds.items()
               if name in kc.convert.__globals__["SHADOWED"]), kinds
    for name, values in stored.items():  # every array of the file, where it belongs
        for got, want in zip(converted.get_layer(name).get_weights(), values):
            np.testing.assert_array_equal(got, want)
    loaded = load_h5(path)  # Keras's own layers (keras.models.load_model, two fixes)
    assert not any(_ours(layer) for layer in loaded.layers)
    shape = tuple(converted.inputs[0].shape[1:])
    x = rand((2,) + shape, 5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(converted(x, training=False)),
                                  keras.ops.convert_to_numpy(loaded(x, training=False)))
    if "sequential" in era:  # and the numbers the file's weights give, computed in NumPy
        np.testing.assert_allclose(keras.ops.convert_to_numpy(converted(x)),
                                   _sequential_keras2_numpy(x, stored), rtol=1e-4, atol=1e-4)
    _yaml_round_trip(converted, x)  # and on to a config


def test_keras2_h5_files_keras_itself_mishandles(tmp_path):
    """Why `kc.convert("m.h5")` loads through `load_h5`: Keras 3.15 refuses the tf.keras
    file (`groups` on DepthwiseConv2D; keras-team/keras#19441) and gives the Keras 2.2.4
    Sequential a second batch dimension. Should Keras fix both, this fails: then the
    rewrites in load_h5 can go."""
    for make, error, message in [
            (_functional_keras2, TypeError, r"Unrecognized keyword arguments passed to "
                                            r"DepthwiseConv2D: \{'groups': 1\}"),
            (_sequential_keras2, ValueError, r"input of shape \(None, None, 10, 10, 2\)")]:
        path = tmp_path / f"{make.__name__}.h5"
        _write_keras2_h5(path, *make())
        with pytest.raises(error, match=message):
            keras.models.load_model(path, compile=False)


def _sequential_keras2_numpy(x, stored):
    """The Keras 2.2.4 model in float64 NumPy, from the arrays written to the file."""
    kernel, bias = stored["conv2d_1"]
    h = np.maximum(oracle.conv(x, kernel, (1, 1), ((1, 1), (1, 1)), (1, 1)) + bias, 0)
    gamma, beta, mean, variance = (v.astype(np.float64) for v in stored["batch_normalization_1"])
    h = (h - mean) / np.sqrt(variance + 0.001) * gamma + beta
    n, rows, cols, c = h.shape
    h = h.reshape(n, rows // 2, 2, cols // 2, 2, c).max(axis=(2, 4))
    h = h.repeat(2, axis=1).repeat(2, axis=2)
    kernel, bias = stored["dense_1"]
    return h.reshape(n, -1) @ kernel + bias
