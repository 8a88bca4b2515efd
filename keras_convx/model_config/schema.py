"""A JSON Schema (draft 2020-12) of the config format, for editors and CI linters.

Everything is generated from code, never from a list of layers: the keys from `spec.py`, the
layer types from `layer_types()` (so types added with `register_layer` are in it), and each
type's `args` from its constructor (`schema_args`: signature, defaults, and the types
the builder's own checks accept).

Every value the expander substitutes also accepts a `$variable` or `${expression}` string:
its type is only known after expansion. What JSON Schema can't say (names that must exist,
block parameters, shapes, files) is left to `keras_convx.validate`.
"""

import copy
import json

from keras_convx.model_config import spec
from keras_convx.model_config.builder import INPUT_DTYPES, layer_types, signature_params
from keras_convx.model_config.schema_args import (
    DYNAMIC, DYNAMIC_PATTERN, _args_schema, _dynamic,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema():
    """The JSON Schema (draft 2020-12) of the config format as a dict.

    Layer types and their arguments come from `layer_types()` at call time, so types
    registered with `keras_convx.register_layer` are included. Write it with
    `json.dump(json_schema(), f, indent=2)` and point the editor at the file, e.g. with
    `# yaml-language-server: $schema=keras_convx.schema.json` as a config's first line.

    Returns:
        A new dict each call (safe to modify).
    """
    types = layer_types()
    by_class = {}  # aliases (Conv2D, Convolution2D) share one args schema
    for name, cls in types.items():
        by_class.setdefault(cls, []).append(name)
    defs = {"dynamic": {"type": "string", "pattern": DYNAMIC_PATTERN,
                        "description": "a $variable or ${expression}, checked on expansion"},
            "layer": _entry_schema(sorted(types), by_class),
            "block": _block_schema(),
            "input": _input_schema()}
    for cls, names in by_class.items():
        defs[_args_key(names)] = copy.deepcopy(_args_schema(cls))
    top = {
        "version": {"const": spec.FORMAT_VERSION,
                    "description": f"format version; this schema describes version "
                                   f"{spec.FORMAT_VERSION}"},
        "name": {"type": "string", "description": "the Keras model name (default 'model')"},
        "description": {"type": "string", "description": "free text"},
        "variables": {"type": ["object", "null"], "propertyNames": {"pattern": spec.NAME_RE.pattern},
                      "additionalProperties": {"type": ["number", "boolean", "string", "null"]},
                      "description": "name: default value; '${expr}' derives from the ones above"},
        "scales": {"type": ["object", "null"], "additionalProperties": {"type": "object"},
                   "description": "presets: {preset: {variable: value}}, chosen with scale="},
        "inputs": {"type": "object", "minProperties": 1,
                   "propertyNames": {"pattern": spec.NAME_RE.pattern},
                   "additionalProperties": {"$ref": "#/$defs/input"},
                   "description": "name: {shape: [...] (no batch dim), dtype: float32}"},
        "blocks": {"type": ["object", "null"], "additionalProperties": {"$ref": "#/$defs/block"},
                   "description": "reusable parameterized layer groups"},
        # allOf, not properties beside $ref: draft-07 tools (yaml-language-server) drop those
        "layers": {"type": "array", "minItems": 1, "items": {"allOf": [
            {"$ref": "#/$defs/layer"},
            {"properties": {"name": {"anyOf": [{"pattern": spec.NAME_RE.pattern}, DYNAMIC]}}}]}},
        "outputs": {"anyOf": [{"type": "string"},
                              {"type": "array", "minItems": 1, "items": {"type": "string"}},
                              {"type": "object", "minProperties": 1,
                               "additionalProperties": {"type": "string"}}],
                    "description": "a layer name, a list, or {output: layer}; default: the last layer"},
        "weights": {"type": ["string", "null"],
                    "description": "a .weights.h5 file, relative to the config"},
    }
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "keras_convx model config",
        "description": "A Keras model as YAML: see configs/README.md.",
        "type": "object",
        "properties": {key: top[key] for key in spec.TOP_KEYS},  # KeyError: spec grew a key
        "required": ["version", "inputs", "layers"],
        "additionalProperties": False,
        "$defs": defs,
    }


def dumps(indent=2):
    """The schema as JSON text (what `keras-convx schema` writes)."""
    return json.dumps(json_schema(), indent=indent, allow_nan=False) + "\n"


# -- the structure ---------------------------------------------------------------------


def _args_key(names):
    return f"args-{names[0]}"  # the first name: Conv2D, not its alias Convolution2D


def _block_name_pattern():
    """Inside a block a name gets the instance's prefix (`conv2_block1_` + `0_conv`), so it
    may start with any character NAME_RE allows after the first."""
    pattern = spec.NAME_RE.pattern.replace("^[A-Za-z_]", "^", 1)
    if pattern == spec.NAME_RE.pattern:
        raise RuntimeError(f"spec.NAME_RE changed ({pattern}): update _block_name_pattern")
    return pattern


def _entry_schema(type_names, by_class):
    # top-level entries narrow this to NAME_RE
    name = {"anyOf": [{"type": "string", "pattern": _block_name_pattern()}, DYNAMIC]}
    properties = {
        "type": _dynamic({"enum": type_names}),
        "block": {"type": "string", "description": "a block name from `blocks`"},
        "name": name,
        "args": {"type": ["object", "null"]},
        "inputs": _dynamic({"anyOf": [{"type": "string"},
                                      {"type": "array", "items": {"type": "string"}}]}),
        "repeat": _dynamic({"type": "integer", "minimum": 1, "maximum": spec.MAX_REPEAT}),
        "when": {"description": "the entry is included only if this is true"},
    }
    branches = []
    for cls, names in by_class.items():
        args = {"$ref": f"#/$defs/{_args_key(names)}"}
        if signature_params(cls)[1]:
            then = {"required": ["args"], "properties": {"args": args}}
        else:
            then = {"properties": {"args": {"anyOf": [{"type": "null"}, args]}}}
        branches.append({"if": {"required": ["type"], "properties": {"type": {"enum": names}}},
                         "then": then})
    return {
        "type": "object",
        "properties": {key: properties[key] for key in spec.ENTRY_KEYS},
        "additionalProperties": False,
        # exactly one of `type` and `block`; written as if/else for a readable message
        "if": {"required": ["block"]},
        "then": {"not": {"required": ["type"]}},
        "else": {"required": ["type"]},
        "allOf": branches,
    }


def _block_schema():
    properties = {
        "params": {"type": ["object", "null"],
                   "description": "name: default (null = required)"},
        "layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}},
        "output": {"type": "string", "description": "default: the last layer of the block"},
        "description": {"type": "string"},
    }
    return {"type": "object", "properties": {key: properties[key] for key in spec.BLOCK_KEYS},
            "required": ["layers"], "additionalProperties": False}


def _input_schema():
    dim = _dynamic({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]})
    properties = {
        "shape": _dynamic({"type": "array", "items": dim}),
        "dtype": _dynamic({"enum": list(INPUT_DTYPES)}),
        "batch_size": _dynamic({"type": ["integer", "null"], "minimum": 1}),
    }
    return {"type": "object", "properties": {key: properties[key] for key in spec.INPUT_KEYS},
            "required": ["shape"], "additionalProperties": False}
