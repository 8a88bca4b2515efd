"""Models from YAML: the zoo, round-trips, located validation errors, hostile input."""

import os
import time

import keras
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import keras_convx as kc
from keras_convx.model_config import ConfigError, to_dict
from helpers import rand

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "configs")
ZOO_NAMES = sorted(n[:-5] for n in os.listdir(ZOO) if n.endswith(".yaml"))


@pytest.mark.parametrize("name,app", [
    ("resnet50", "ResNet50"), ("mobilenet", "MobileNet"), ("xception", "Xception")])
def test_zoo_parameter_counts_equal_keras_applications(name, app):
    ours = kc.build_model(os.path.join(ZOO, f"{name}.yaml"))
    reference = getattr(keras.applications, app)(weights=None)
    assert ours.count_params() == reference.count_params()
    assert {25_636_712: "resnet50", 4_253_864: "mobilenet", 22_910_480: "xception"}[
        ours.count_params()] == name


def test_resnet50_stage4_feature_map_for_600x600():
    plan = kc.validate(os.path.join(ZOO, "resnet50.yaml"), size=600, include_top=False)
    last_stage4 = [s.name for s in plan.order if s.name.startswith("conv4_block")][-1]
    assert plan.shapes[last_stage4] == (None, 38, 38, 1024)


def same_graph(a, b):
    assert [type(x) for x in a.layers] == [type(x) for x in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert la.get_config() == lb.get_config(), la.name
    assert to_dict(a)["layers"] == to_dict(b)["layers"]  # connectivity
    assert a.count_params() == b.count_params()


def _forward(model, seed=0):
    xs = [rand((2,) + tuple(i.shape[1:]), seed + k) for k, i in enumerate(model.inputs)]
    out = model(xs if len(xs) > 1 else xs[0])
    return xs, [keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, list) else [out])]


# backend-agnostic code: half the zoo on JAX
@pytest.mark.thin_on_jax(2)
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_config_builds_runs_round_trips_and_exports(name, tmp_path):
    model = kc.build_model(os.path.join(ZOO, f"{name}.yaml"), scale="t")
    xs, ys = _forward(model)
    assert all(np.isfinite(y).all() for y in ys)
    text = kc.to_yaml(model)
    clone = kc.build_model(text)
    same_graph(model, clone)
    clone.set_weights(model.get_weights())
    _, ys2 = _forward(clone)
    for a, b in zip(ys, ys2):
        np.testing.assert_array_equal(a, b)
    report = kc.export_onnx(model, tmp_path / f"{name}.onnx")
    assert report.passed and report.method == "native"


LAYER_CHOICES = [
    ("Conv2D", lambda d: {"filters": d(st.integers(1, 6)), "kernel_size": d(st.integers(1, 3)),
                          "padding": d(st.sampled_from(["same", "valid"])),
                          "padding_mode": d(st.sampled_from(["zeros", "reflect"]))}),
    ("DepthwiseConv2D", lambda d: {"kernel_size": 3, "padding": "same",
                                   "depth_multiplier": d(st.integers(1, 2))}),
    ("SeparableConv2D", lambda d: {"filters": d(st.integers(1, 5)), "kernel_size": 3, "padding": "same"}),
    ("BatchNormalization", lambda d: {"epsilon": d(st.sampled_from([1e-3, 1e-5]))}),
    ("Activation", lambda d: {"activation": d(st.sampled_from(["relu", "tanh", "swish"]))}),
    ("Padding2D", lambda d: {"padding": 1, "mode": d(st.sampled_from(["reflect", "circular"]))}),
    ("Cropping2D", lambda d: {"cropping": 1}),
]


@st.composite
def small_models(draw):
    n = draw(st.integers(1, 6))
    inputs = keras.Input((12, 12, 3), name="img")
    tensors = [inputs]
    for i in range(n):
        kind, make_args = draw(st.sampled_from(LAYER_CHOICES))
        args = make_args(draw)
        source = tensors[draw(st.integers(0, len(tensors) - 1))]
        if kind == "Cropping2D" and source.shape[1] < 6:
            kind, args = "Activation", {"activation": "relu"}
        layer = (getattr(kc, kind, None) or getattr(keras.layers, kind))(**args, name=f"l{i}")
        tensors.append(layer(source))
    return keras.Model(inputs, tensors[-1] if len(tensors) == 2 or draw(st.booleans())
                       else [tensors[-1], tensors[-2]])


@settings(max_examples=25)
@given(small_models())
def test_round_trip_random_models(model):
    clone = kc.build_model(kc.to_yaml(model))
    same_graph(model, clone)
    clone.set_weights(model.get_weights())
    _, a = _forward(model)
    _, b = _forward(clone)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


BASE = """version: 1
inputs:
  image: {shape: [16, 16, 3]}
layers:
  - {type: Conv2D, name: conv1, args: {filters: 8, kernel_size: 3}}
"""

# (case id, config text, expected message regex, line, col)
MALFORMED = [
    ("misspelled-arg", BASE.replace("kernel_size", "kernal_size"),
     r"layers\[0\] \(conv1\)\.args\.kernal_size: unknown argument of Conv2D; did you mean kernel_size\?", 5, 52),
    ("unknown-type", BASE.replace("type: Conv2D", "type: Conv2d"),
     r"layers\[0\] \(conv1\)\.type: unknown layer type 'Conv2d'; did you mean Conv2D\?", 5, 6),
    ("missing-version", BASE.replace("version: 1\n", ""),
     r": missing required key 'version' \(current: 1\)", 1, 1),
    ("newer-version", BASE.replace("version: 1", "version: 9"),
     r"version: version 9 is newer than this keras_convx understands \(1\)", 1, 1),
    ("bad-version-type", BASE.replace("version: 1", "version: one"),
     r"version: version must be a positive int, got 'one'", 1, 1),
    ("unknown-top-key", BASE + "output: conv1\n",
     r"output: unknown key in the config; did you mean outputs\?", 6, 1),
    ("no-layers", "version: 1\ninputs:\n  image: {shape: [4, 3]}\n",
     r": missing required key 'layers'", 1, 1),
    ("empty-layers", "version: 1\ninputs:\n  image: {shape: [4, 3]}\nlayers: []\n",
     r"layers: layers must be a non-empty list", 4, 1),
    ("unknown-input", BASE + "  - {type: Conv2D, name: c2, inputs: convv1, args: {filters: 2, kernel_size: 1}}\n",
     r"layers\[1\] \(c2\)\.inputs: unknown input name 'convv1'; did you mean conv1\?", 6, 30),
    ("duplicate-name", BASE + "  - {type: Conv2D, name: conv1, args: {filters: 2, kernel_size: 1}}\n",
     r"layers\[1\]\.name: duplicate name 'conv1'", 6, 20),
    ("cycle", BASE.replace("name: conv1,", "name: conv1, inputs: c2,") +
     "  - {type: Conv2D, name: c2, args: {filters: 3, kernel_size: 1}}\n",
     r"layers\[0\] \(conv1\)\.inputs: cycle: conv1 -> c2 -> conv1", 5, 33),
    ("merge-shape-mismatch", BASE + "  - {type: Conv2D, name: c2, inputs: image, args: {filters: 4, kernel_size: 3}}\n"
     "  - {type: Add, name: add, inputs: [conv1, c2]}\n",
     r"layers\[2\] \(add\): Add can't take input shape\(s\) \(None, 14, 14, 8\) and \(None, 14, 14, 4\)", 7, 5),
    ("wrong-arg-type", BASE.replace("filters: 8", "filters: eight"),
     r"layers\[0\] \(conv1\)\.args\.filters: Conv2D: filters must be a positive int, got 'eight'", 5, 40),
    ("bad-strides", BASE.replace("kernel_size: 3", "kernel_size: 3, strides: 0"),
     r"layers\[0\] \(conv1\)\.args\.strides: Conv2D: strides must be positive ints, got \(0, 0\)", 5, 68),
    ("missing-required", BASE.replace("filters: 8, ", ""),
     r"layers\[0\] \(conv1\)\.args: missing required argument\(s\) \['filters'\] of Conv2D", 5, 33),
    ("args-not-mapping", BASE.replace("args: {filters: 8, kernel_size: 3}", "args: [8, 3]"),
     r"layers\[0\]\.args: args must be a mapping", 5, 33),
    ("entry-both-type-and-block", BASE.replace("{type: Conv2D,", "{type: Conv2D, block: x,"),
     r"layers\[0\]: a layer entry needs exactly one of 'type' or 'block'", 5, 5),
    ("entry-unknown-key", BASE.replace("name: conv1,", "name: conv1, input: image,"),
     r"layers\[0\]\.input: unknown key in a layer entry; did you mean inputs\?", 5, 33),
    ("unknown-block", BASE + "  - {block: bottleneck, name: b}\n",
     r"layers\[1\]\.block: unknown block 'bottleneck'", 6, 6),
    ("unknown-variable", BASE.replace("filters: 8", "filters: $widht") + "variables: {width: 8}\n",
     r"layers\[0\]\.args\.filters: unknown variable 'widht'", 5, 40),
    ("bad-expression", BASE.replace("filters: 8", "filters: '${8 *}'"),
     r"layers\[0\]\.args\.filters: invalid expression '8 \*'", 5, 40),
    ("expression-call", BASE.replace("filters: 8", "filters: '${__import__(1)}'"),
     r"call of '__import__' is not allowed in an expression", 5, 40),
    ("expression-attribute", BASE.replace("filters: 8", "filters: '${width.real}'") + "variables: {width: 8}\n",
     r"attribute access \(\.real\) is not allowed", 5, 40),
    ("huge-power", BASE.replace("filters: 8", "filters: '${2 ** 10000}'"),
     r"exponent too large", 5, 40),
    # found by the YAML fuzz: a comparison of a list with a number was a raw TypeError
    ("list-compared", BASE.replace("filters: 8", "filters: '${8 if [2, 2] > 1 else 4}'"),
     r"layers\[0\]\.args\.filters: '>' not supported between instances of 'list' and 'int'",
     5, 40),
    ("bad-shape", BASE.replace("[16, 16, 3]", "[16, -1, 3]"),
     r"inputs\.image\.shape: shape must be a list of positive ints or null", 3, 11),
    ("input-unknown-key", BASE.replace("{shape: [16, 16, 3]}", "{shape: [16, 16, 3], dtyp: float32}"),
     r"inputs\.image\.dtyp: unknown key in input 'image'; did you mean dtype\?", 3, 31),
    ("unknown-scale", BASE + "scales: {s: {}}\n", r"scales: unknown scale 'm'", 6, 1),
    ("scale-unknown-variable", BASE + "variables: {width: 1}\nscales: {m: {widht: 2}}\n",
     r"scales\.m\.widht: unknown variable; did you mean width\?", 7, 14),
    ("repeat-zero", BASE.replace("{type: Conv2D, name: conv1,", "{type: Conv2D, name: conv1, repeat: 0,"),
     r"layers\[0\]\.repeat: repeat must be a positive int, got 0", 5, 33),
    ("unknown-output", BASE + "outputs: [conv2]\n",
     r"outputs\.conv2: unknown layer 'conv2'; did you mean conv1\?", 6, 1),
    ("lambda-not-allowed", BASE.replace("type: Conv2D", "type: Lambda"),
     r"unknown layer type 'Lambda'", 5, 6),
    ("import-path-type", BASE.replace("type: Conv2D", "type: keras.layers.Conv2D"),
     r"unknown layer type 'keras.layers.Conv2D'", 5, 6),
    ("duplicate-key", BASE.replace("filters: 8,", "filters: 8, filters: 9,"),
     r"duplicate key 'filters'", 5, 52),
    ("not-yaml", "version: 1\nlayers: [\n", r"not valid YAML", 3, 1),
    ("top-not-mapping", "- 1\n- 2\n", r"the config must be a mapping, got list", 1, 1),
    ("block-unknown-param", BASE.replace("layers:\n", "blocks:\n  b: {params: {f: 1}, layers: [{type: ReLU}]}\nlayers:\n")
     + "  - {block: b, name: bb, args: {g: 2}}\n", r"layers\[1\]\.args\.g: unknown parameter of block 'b'", 8, 33),
    ("bad-regularizer", BASE.replace("kernel_size: 3", "kernel_size: 3, kernel_regularizer: {GroupLaso: {l: 1}}"),
     r"layers\[0\] \(conv1\)\.args\.kernel_regularizer: unknown regularizer 'GroupLaso'; did you mean GroupLasso\?", 5, 68),
    ("weights-missing", BASE + "weights: nope.weights.h5\n", r"weights: can't load weights", 6, 1),
    # what a newcomer typed (issue 14): the message names what was written and the fix
    ("quoted-int", BASE.replace("filters: 8", 'filters: "8"'),
     r"got '8' \(the config gives filters as the string '8': remove the quotes for a number", 5, 40),
    ("keras-layer-not-allowed", BASE.replace("type: Conv2D", "type: SimpleRNN"),
     r"\.type: SimpleRNN is a Keras layer but not allowed in configs; register it with "
     r"keras_convx\.register_layer\(keras\.layers\.SimpleRNN\)", 5, 6),
    ("block-output-left-out-by-when", BASE.replace("layers:\n", (
        "blocks:\n  res:\n    params: {skip: true}\n    layers:\n"
        "      - {type: ReLU, name: act}\n"
        "      - {type: Add, name: add, when: $skip, inputs: [in, act]}\n"
        "    output: add\nlayers:\n")) + "  - {block: res, name: r1}\n"
     "  - {block: res, name: r2, args: {skip: false}}\n",
     r"layers\[2\]: block 'res' outputs 'add', which its `when: \$skip` leaves out in "
     r"instance 'r2'", 14, 5),
    ("block-instance-bad-inputs", BASE.replace("layers:\n", (
        "blocks:\n  cb: {layers: [{type: ReLU, name: act}]}\nlayers:\n"))
     + "  - {block: cb, name: b1, inputs: [conv]}\n",
     r"layers\[1\]\.inputs: unknown input name 'conv' of block instance 'b1'.*did you mean "
     r"conv1\?", 8, 27),
    ("indentation", BASE.replace("\nlayers:", "\n layers:"),
     r"not valid YAML: this line's indentation does not match the lines above", 4, 2),
    ("tab", BASE.replace("  image:", "\timage:"), r"not valid YAML: a tab: indent with spaces", 3, 1),
    # kc.build_model("resnet50") builds the zoo's; a typo says so (one word is also YAML)
    ("zoo-typo", "resnt50", r"the config must be a mapping, got str: 'resnt50' is not a zoo "
                            r"name either \(zoo: .*did you mean resnet50\?\)", 1, 1),
]


@pytest.mark.parametrize("text,message,line,col", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_configs_fail_with_located_messages(text, message, line, col):
    with pytest.raises(ConfigError, match=message) as info:
        kc.build_model(text, scale="m" if "scales" in text else None)
    err = info.value
    assert (err.line, err.col) == (line, col), str(err)
    assert str(err).startswith("<string>" + (f":{line}:{col}" if line else ""))


@pytest.mark.parametrize("text", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_keras_free_precheck_says_what_the_full_check_says(text):
    """The CLI's check before the backend import (model_config.precheck) raises the full
    check's own error, at the same place, or leaves the config to it."""
    from keras_convx.model_config.precheck import precheck

    scale = "m" if "scales" in text else None
    with pytest.raises(ConfigError) as full:
        kc.build_model(text, scale=scale)
    try:
        precheck(text, scale=scale)
    except ConfigError as early:
        assert str(early) == str(full.value)


def test_precheck_layer_table_is_the_one_keras_gives():
    import json

    from keras_convx.model_config.precheck import TABLE_PATH, make_table

    with open(TABLE_PATH) as f:
        shipped = json.load(f)
    assert shipped == json.loads(json.dumps(make_table())), (
        "model_config/layer_table.json is stale: python -m keras_convx.model_config.precheck")


def test_python_tags_rejected_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = BASE + f"description: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError, match=r"<string>:6:14: description: tag !!python/object/apply:os.system is not allowed"):
        kc.build_model(text)
    assert not marker.exists()


def test_alias_bomb_and_huge_repeat_fail_fast():
    bomb = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{'abcdefghij'[i]}: &{'abcdefghij'[i]} [" + ", ".join(["*" + "abcdefghij"[i - 1]] * 10) + "]\n"
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="alias expansion"):
        kc.build_model(bomb)
    huge = BASE.replace("{type: Conv2D, name: conv1,", "{type: Conv2D, name: conv1, repeat: 1000000000,")
    with pytest.raises(ConfigError, match=r"layers\[0\]\.repeat: repeat 1000000000 exceeds the limit 1000"):
        kc.build_model(huge)
    deep = "version: 1\nx: " + "[" * 200 + "]" * 200 + "\n"
    with pytest.raises(ConfigError, match="nested deeper than"):
        kc.build_model(deep)
    assert time.perf_counter() - start < 5.0


def test_variables_scales_overrides_blocks_and_weights(tmp_path):
    text = """version: 1
name: net
variables: {width: 1.0, blocks: 2, act: relu}
scales: {s: {width: 0.5, blocks: 1}}
inputs: {x: {shape: [8, 8, 2]}}
blocks:
  res:
    params: {filters: null}
    layers:
      - {type: Conv2D, name: c, args: {filters: $filters, kernel_size: 3, padding: same, activation: $act}}
      - {type: Add, name: add, inputs: [in, c]}
layers:
  - {type: Conv2D, name: stem, args: {filters: "${int(8 * width)}", kernel_size: 1}}
  - {block: res, name: r, repeat: $blocks, args: {filters: "${int(8 * width)}"}}
"""
    full = kc.build_model(text)
    assert [l.name for l in full.layers] == ["x", "stem", "r_1_c", "r_1_add", "r_2_c", "r_2_add"]
    small = kc.build_model(text, scale="s")
    assert small.get_layer("stem").filters == 4 and len(small.layers) == 4
    override = kc.build_model(text, scale="s", width=2.0, act="tanh")
    assert override.get_layer("stem").filters == 16
    assert override.get_layer("r_c").activation.__name__ == "tanh"
    with pytest.raises(ConfigError, match="override of unknown variable 'widht'; did you mean width"):
        kc.build_model(text, widht=2)
    full.save_weights(tmp_path / "w.weights.h5")
    config = tmp_path / "net.yaml"
    config.write_text(text + "weights: w.weights.h5\n")
    loaded = kc.build_model(config)
    for a, b in zip(loaded.get_weights(), full.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_initializers_regularizers_constraints_by_name_and_args():
    text = BASE.replace("kernel_size: 3", "kernel_size: 3, kernel_initializer: {HeNormal: {seed: 3}}, "
                        "kernel_regularizer: {GroupLasso: {l: 0.001}}, kernel_constraint: FilterMaxNorm, "
                        "bias_regularizer: {L2: {l2: 0.01}}")
    layer = kc.build_model(text).get_layer("conv1")
    assert type(layer.kernel_initializer).__name__ == "HeNormal" and layer.kernel_initializer.seed == 3
    assert isinstance(layer.kernel_regularizer, kc.regularizers.GroupLasso)
    assert isinstance(layer.kernel_constraint, kc.constraints.FilterMaxNorm)
    assert layer.bias_regularizer.l2 == pytest.approx(0.01)


def test_register_layer():
    @keras.saving.register_keras_serializable(package="tests")
    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return dict(super().get_config(), factor=self.factor)

    kc.register_layer(Scale)
    model = kc.build_model(BASE + "  - {type: Scale, name: s, args: {factor: 3.0}}\n")
    assert model.get_layer("s").factor == 3.0
    assert "type: Scale" in kc.to_yaml(model)
    with pytest.raises(ValueError, match="register_layer: type 'Conv2D' is already"):
        kc.register_layer(Scale, name="Conv2D")
