"""The config JSON Schema: valid draft 2020-12, takes the zoo, and never takes what
`keras_convx.validate` refuses (nor refuses what it takes) for the cases below."""

import copy
import json
import os

import jsonschema
import pytest
import yaml

import keras_convx as kc
from keras_convx.model_config import builder
from keras_convx.model_config.loader import ConfigError
from keras_convx.model_config.schema import json_schema
from keras_convx.utils import args as A

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "configs")
ZOO_NAMES = sorted(n[:-5] for n in os.listdir(ZOO) if n.endswith(".yaml"))

BASE = {
    "version": 1,
    "name": "tiny",
    "inputs": {"image": {"shape": [16, 16, 3]}},
    "layers": [
        {"type": "Conv2D", "name": "conv", "args": {"filters": 4, "kernel_size": 3, "padding": "same"}},
        {"type": "MaxPooling2D", "name": "pool"},
        {"type": "GlobalAveragePooling2D", "name": "gap"},
    ],
}


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(json_schema())


def schema_errors(validator, config):
    """{absolute path: [messages]} of every error, nested ones (anyOf, if/then) included."""
    found = {}
    stack = list(validator.iter_errors(config))
    while stack:
        error = stack.pop()
        found.setdefault(tuple(error.absolute_path), []).append(error.message)
        stack.extend(error.context or ())
    return found


def mutated(edit):
    config = copy.deepcopy(BASE)
    edit(config)
    return config


def _set(path, value):
    def edit(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _drop(path):
    def edit(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


CONV_ARGS = ("layers", 0, "args")

# name: (edit of BASE, where the schema must flag it and what it says, what the library says)
MALFORMED = {
    "unknown-top-level-key": (_set(("layer",), []), (), "'layer' was unexpected",
                              "unknown key in the config; did you mean layers"),
    "unknown-layer-type": (_set(("layers", 0, "type"), "Conv2d"), ("layers", 0, "type"),
                           "'Conv2d' is not one of", "unknown layer type 'Conv2d'; did you mean Conv2D"),
    "conv2d-arg-typo-filtrs": (
        lambda c: c["layers"][0]["args"].update(filtrs=c["layers"][0]["args"].pop("filters")),
        CONV_ARGS, "'filtrs' was unexpected", "unknown argument of Conv2D; did you mean filters"),
    "conv2d-padding-sme": (_set(CONV_ARGS + ("padding",), "sme"), CONV_ARGS + ("padding",),
                           "'sme' is not one of ['valid', 'same', 'causal']", "padding must be one of"),
    "conv2d-filters-bool": (_set(CONV_ARGS + ("filters",), True), CONV_ARGS + ("filters",),
                            "True is not of type 'integer'", "filters must be a positive int"),
    "entry-missing-type": (_drop(("layers", 0, "type")), ("layers", 0),
                           "'type' is a required property", "needs exactly one of 'type' or 'block'"),
    # beyond the six asked for: per-class enums, keys, limits
    "maxpooling2d-padding-causal": (_set(("layers", 1, "args"), {"padding": "causal"}),
                                    ("layers", 1, "args", "padding"), "'causal' is not one of",
                                    "must be either 'valid' or 'same'"),
    "conv2dtranspose-padding-causal": (
        lambda c: (c["layers"][0].update(type="Conv2DTranspose"),
                   c["layers"][0]["args"].update(padding="causal")),
        CONV_ARGS + ("padding",), "'causal' is not one of ['valid', 'same']",
        r"padding must be one of \('valid', 'same'\)"),
    "conv2d-padding_mode-typo": (_set(CONV_ARGS + ("padding_mode",), "reflection"),
                                 CONV_ARGS + ("padding_mode",), "'reflection' is not one of",
                                 "padding_mode must be one of"),
    "conv2d-groups-bool": (_set(CONV_ARGS + ("groups",), True), CONV_ARGS + ("groups",),
                           "True is not of type 'integer'", "groups must be a positive int"),
    # MaxPooling2D declares `name` in its signature; the builder passes it already
    "maxpooling2d-name-in-args": (_set(("layers", 1, "args"), {"name": "p"}), ("layers", 1, "args"),
                                  "'name' was unexpected",
                                  "multiple values for keyword argument 'name'"),
    "conv2d-missing-kernel_size": (_drop(CONV_ARGS + ("kernel_size",)), CONV_ARGS,
                                   "'kernel_size' is a required property", "missing required argument"),
    "entry-type-and-block": (_set(("layers", 0, "block"), "b"), ("layers", 0),
                             "should not be valid under {'required': ['type']}",
                             "exactly one of 'type' or 'block'"),
    "repeat-zero": (_set(("layers", 1, "repeat"), 0), ("layers", 1, "repeat"),
                    "0 is less than the minimum of 1", "repeat must be a positive int"),
    "version-2": (_set(("version",), 2), ("version",), "1 was expected", "newer than"),
    "input-unknown-key": (_set(("inputs", "image", "shap"), [1]), ("inputs", "image"),
                          "'shap' was unexpected", "unknown key in input"),
    "input-dtype": (_set(("inputs", "image", "dtype"), "float8"), ("inputs", "image", "dtype"),
                    "'float8' is not one of", "unsupported dtype"),
    "missing-layers": (_drop(("layers",)), (), "'layers' is a required property",
                       "missing required key 'layers'"),
}

# Forms the schema must not flag, because the library takes them.
ACCEPTED = {
    "conv2d-padding-pairs": _set(CONV_ARGS + ("padding",), [[0, 1], [1, 0]]),
    "conv2d-padding-int": _set(CONV_ARGS + ("padding",), 1),
    "conv2d-padding-upper-case": _set(CONV_ARGS + ("padding",), "SAME"),
    "conv2d-strides-list": _set(CONV_ARGS + ("strides",), [2, 1]),
    "conv2d-initializer-mapping": _set(CONV_ARGS + ("kernel_initializer",), {"HeNormal": {"seed": 1}}),
    "conv2d-padding_mode-reflect": _set(CONV_ARGS + ("padding_mode",), "reflect"),
    "conv2d-data_format-null": _set(CONV_ARGS + ("data_format",), None),
    "maxpooling2d-pool_size-int": _set(("layers", 1, "args"), {"pool_size": 3, "strides": 2}),
    "upsampling2d-fractional-size": lambda c: c["layers"].insert(
        1, {"type": "UpSampling2D", "args": {"size": 1.5, "interpolation": "bicubic"}}),
    "type-interpolated": lambda c: (c.setdefault("variables", {}).update(d=2),
                                    c["layers"][0].update(type="Conv${d}D")),
    "args-from-variables": lambda c: (c.setdefault("variables", {}).update(f=8, pad="same"),
                                      c["layers"][0]["args"].update(filters="$f", padding="$pad",
                                                                    strides="${1 + 1}")),
    "shape-from-expression": lambda c: (c.setdefault("variables", {}).update(s=16),
                                        c["inputs"]["image"].update(shape="${[s, s, 3]}")),
}


def test_schema_is_valid_draft_2020_12_json():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(json.dumps(schema, allow_nan=False)) == schema


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_config_validates(validator, name):
    with open(os.path.join(ZOO, f"{name}.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    assert schema_errors(validator, config) == {}


def test_base_config_is_valid_for_both(validator):
    assert schema_errors(validator, BASE) == {}
    kc.validate(copy.deepcopy(BASE))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_config_rejected_by_schema_and_library(validator, case):
    edit, path, schema_says, library_says = MALFORMED[case]
    config = mutated(edit)
    errors = schema_errors(validator, config)
    assert any(schema_says in m for m in errors.get(path, ())), \
        f"schema: no error {schema_says!r} at {path}; got {errors}"
    with pytest.raises(ConfigError, match=library_says):
        kc.validate(config)


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_valid_variant_accepted_by_schema_and_library(validator, case):
    config = mutated(ACCEPTED[case])
    assert schema_errors(validator, config) == {}
    kc.validate(config)


def test_every_argument_of_every_type_takes_variables(validator):
    """Each typed argument also takes `$var` and `${expr}` (checked on expansion)."""
    schema = json_schema()
    entries = []
    for name in builder.layer_types():
        args = schema["$defs"][_args_key(schema, name)]["properties"]
        entries.append({"type": name, "args": {arg: "$v" for arg in args}})
        entries.append({"type": name, "args": {arg: "${v}" for arg in args}})
    config = dict(BASE, layers=entries)
    assert schema_errors(validator, config) == {}


def _args_key(schema, type_name):
    """The $defs key of a type's args schema, found through its if/then branch."""
    for branch in schema["$defs"]["layer"]["allOf"]:
        if type_name in branch["if"]["properties"]["type"]["enum"]:
            args = branch["then"]["properties"]["args"]
            ref = args["$ref"] if "$ref" in args else args["anyOf"][1]["$ref"]
            return ref.rsplit("/", 1)[-1]
    raise AssertionError(f"no args schema for {type_name}")


def test_layer_types_are_the_allowlist_including_registered(monkeypatch):
    class Scale(builder.keras.layers.Layer):
        """Multiplies by a factor."""

        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

    monkeypatch.setitem(builder._USER_TYPES, "Scale", Scale)
    schema = json_schema()
    enum = schema["$defs"]["layer"]["properties"]["type"]["anyOf"][0]["enum"]
    assert set(enum) == set(builder.layer_types())
    args = schema["$defs"]["args-Scale"]
    assert args["properties"]["factor"]["anyOf"][0] == {"type": "number"}


@pytest.mark.parametrize("type_name,arg,expected", [
    ("Conv1D", "padding", list(A.PADDING_STRINGS)),
    ("Conv2D", "padding", list(A.PADDING_STRINGS)),
    ("Conv2DTranspose", "padding", list(A.PADDING_STRINGS[:2])),
    ("MaxPooling2D", "padding", ["valid", "same"]),
    ("Conv2D", "padding_mode", list(A.PADDING_MODES)),
    ("Padding2D", "mode", list(A.PAD_MODES)),
    ("Conv3D", "data_format", list(A.DATA_FORMATS)),
    ("GlobalAveragePooling2D", "data_format", list(A.DATA_FORMATS)),
    ("UpSampling2D", "interpolation", ["nearest", "bilinear", "bicubic", "lanczos3", "lanczos5"]),
    ("UpSampling3D", "interpolation", ["nearest", "trilinear"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_enums_are_what_each_layer_accepts(type_name, arg, expected):
    schema = json_schema()
    prop = schema["$defs"][_args_key(schema, type_name)]["properties"][arg]
    enums = [form["enum"] for form in prop["anyOf"] if "enum" in form]
    assert enums == [expected]


def test_to_yaml_output_validates(validator):
    """What the library writes (normalized tuples, serialized initializers) is accepted too."""
    keras = builder.keras
    x = keras.Input((16, 16, 3), name="image")
    y = kc.Conv2D(4, 3, strides=2, padding=[[1, 0], [0, 1]], padding_mode="reflect",
                  kernel_initializer=keras.initializers.HeNormal(seed=1),
                  kernel_regularizer=keras.regularizers.L2(1e-4), name="conv")(x)
    y = keras.layers.BatchNormalization(momentum=0.9, name="bn")(y)
    y = kc.UpSampling2D(1.5, interpolation="bicubic", align_corners=True, name="up")(y)
    y = kc.Cropping2D(((1, 0), (0, 1)), name="crop")(y)
    y = kc.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(y)
    y = keras.layers.MaxPooling2D(3, strides=1, padding="same", name="pool")(y)
    y = keras.layers.GlobalAveragePooling2D(keepdims=True, name="gap")(y)
    config = yaml.safe_load(kc.to_yaml(keras.Model(x, y)))
    assert schema_errors(validator, config) == {}


def test_same_answers_under_draft_07_semantics():
    """yaml-language-server (VS Code's YAML extension) evaluates schemas as draft-07: the
    zoo still passes and every malformed case is still flagged."""
    schema = dict(json_schema(), **{"$schema": "http://json-schema.org/draft-07/schema#"})
    jsonschema.Draft7Validator.check_schema(schema)
    draft7 = jsonschema.Draft7Validator(schema)
    for name in ZOO_NAMES:
        with open(os.path.join(ZOO, f"{name}.yaml"), encoding="utf-8") as f:
            assert schema_errors(draft7, yaml.safe_load(f)) == {}, name
    for case, (edit, path, _, _) in MALFORMED.items():
        assert path in schema_errors(draft7, mutated(edit)), case
