"""The `args` schema of one layer class: its constructor's parameters (`signature_params`,
defaults from `constructor_parameters`), each typed by probing.

Argument types start from the default (bool, int, float, str, list) and are then settled by
asking the builder's own checks: a sample value is tried the way `Plan` tries a layer
(`resolve_args`, construct the layer, infer an output shape). So `strides: [2, 2]`,
`pool_size: 3` against a default of `(2, 2)`, or fractional `UpSampling2D.size` are accepted
because the layer takes them, and `Conv2D.filters: true` is refused because it doesn't.
Enums (padding, padding_mode, data_format, interpolation, mode, anchor, ...) come from the
same checks: the candidates are the vocabularies of `keras_convx.utils.args` and the values
a layer lists when it refuses an unknown one, and each is kept only if that layer accepts
it. That is why `MaxPooling2D.padding` has no "causal" (Keras refuses it) and
`Conv1D.padding` has. Probing builds layer objects but never weights, and runs once per
class.
"""

import functools
import inspect
import json
import re
import warnings

import keras

from keras_convx.model_config.builder import (
    ARG_RESOLVERS, BASE_KWARGS, constructor_parameters, resolve_args, signature_params,
)
from keras_convx.utils import args as A

# `$name` (substituted), `${expr}` (evaluated) and `...${expr}...` (interpolated): the value is
# only known after expansion, whatever type the property has.
DYNAMIC_PATTERN = r"^\$|\$\{"
# The argument-module vocabularies: enum candidates for arguments of these names.
VOCABULARIES = {"padding": A.PADDING_STRINGS, "padding_mode": A.PADDING_MODES,
                "mode": A.PAD_MODES, "data_format": A.DATA_FORMATS}
# The builder passes the entry's name itself: `name` in args is a duplicate keyword.
RESERVED_ARGS = ("name",)
SENTINEL = "__keras_convx_schema_probe__"  # a string no argument accepts as a known value
SPATIAL, CHANNELS = 8, 4  # the probe input: (None, 8, ..., 8, 4), as many dims as the layer wants
FILLERS = (1, [1])  # tried in turn for the required arguments while probing the others
INTEGER, NUMBER = {"type": "integer"}, {"type": "number"}
DYNAMIC = {"$ref": "#/$defs/dynamic"}


def _dynamic(schema):
    """`schema`, or a `$variable` / `${expression}` string. Every substituted value goes
    through here; an unconstrained schema already accepts those strings."""
    if not schema:
        return {}
    if set(schema) == {"anyOf"}:
        return {"anyOf": schema["anyOf"] + [DYNAMIC]}
    return {"anyOf": [schema, DYNAMIC]}


@functools.lru_cache(maxsize=None)
def _args_schema(cls):
    """The `args` schema of one layer class (cached: probing constructs layers)."""
    names, required = signature_params(cls)
    params = {p.name: p for p in constructor_parameters(cls)}
    base = inspect.signature(keras.layers.Layer.__init__).parameters
    for name in BASE_KWARGS:  # dtype, trainable, autocast: keras.layers.Layer's own
        params.setdefault(name, base.get(name, inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=None)))
    probe = _Probe(cls, required)
    properties = {}
    for name in names:
        if name in RESERVED_ARGS or name in properties:
            continue
        param = params[name]
        schema = _dynamic(_arg_type(probe, param))
        default = _json_value(param.default)
        if default is not _NOT_JSON:
            schema["default"] = default
        properties[name] = schema
    doc = (inspect.getdoc(cls) or cls.__name__).splitlines()[0]
    return {"type": "object", "description": f"{cls.__name__}: {doc}", "properties": properties,
            "required": list(required), "additionalProperties": False}


def _arg_type(probe, param):
    """What one argument takes: the default's type, widened or narrowed by probing."""
    name, default = param.name, param.default
    required = default is param.empty
    if isinstance(default, bool):
        # bool() would take anything (`use_bias: "no"` is true): only true/false here.
        return {"type": "boolean"}
    if required or default is None or isinstance(default, str):
        words = _vocabulary(probe, name) if probe.active else []
        if words:
            forms = [{"enum": words}]
            if probe.accepts(name, words[0].upper()):  # the layer lower-cases it
                forms.append({"type": "string", "pattern": _any_case(words)})
            forms += _numeric_forms(probe, name, 1, pairs=True)
            if default is None:
                forms.append({"type": "null"})
            return _one(forms)
        if isinstance(default, str):
            object_form = any(name.endswith(suffix) for suffix in ARG_RESOLVERS)
            return {"type": ["string", "object"]} if object_form else {"type": "string"}
        if default is None or not probe.active:
            return {}  # open (activations, regularizers, seeds, ...) or unknown
        forms = _numeric_forms(probe, name, 1, pairs=True)
        forms += [{"type": kind} for kind, value in (("boolean", True), ("null", None))
                  if probe.accepts(name, value)]
        if words is None:  # the layer keeps any string
            forms.append({"type": "string"})
        return _one(forms) if forms else {}
    sample = default
    while isinstance(sample, (tuple, list)) and sample:  # ((1, 1), (1, 1)) -> 1
        sample = sample[0]
    if isinstance(sample, (int, float)) and not isinstance(sample, bool):
        own = _value_type(default)
        if not probe.active:
            return {"anyOf": [NUMBER, {"type": "array"}]}
        forms = _numeric_forms(probe, name, sample, pairs=True)
        if not any(f.get("type") == own["type"] for f in forms):
            forms.insert(0, own)  # the default is always taken
        return _one(_merge(forms))
    return _value_type(default)


def _numeric_forms(probe, name, s, pairs=False):
    """The numeric forms the layer takes for `name`, from samples around the value `s`:
    an int, a float, a list of ints or floats and, with `pairs` (arguments without a
    numeric default: padding, cropping), a list of (before, after) pairs."""
    floats = (s + 0.5, 0.5)
    forms = []
    if any(probe.accepts(name, f) for f in floats):
        forms.append(NUMBER)
    elif probe.accepts(name, s):
        forms.append(INTEGER)
    for k in (1, 2, 3):
        ints = probe.accepts(name, [s] * k)
        pair_items = pairs and probe.accepts(name, [[s, s]] * k)
        if not (ints or pair_items):
            continue
        items = []
        if ints:
            items.append(NUMBER if any(probe.accepts(name, [f] * k) for f in floats) else INTEGER)
        if pair_items:
            items.append({"type": "array", "items": _dynamic(INTEGER)})
        forms.append({"type": "array", "items": _dynamic(_one(items))})
        break
    return forms


def _value_type(value):
    """The schema of a default value's type."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return dict(INTEGER)
    if isinstance(value, float):
        return dict(NUMBER)
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, (tuple, list)):
        kinds = _merge([_value_type(v) for v in value])
        return {"type": "array", "items": _dynamic(_one(kinds))} if kinds else {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {}


def _merge(forms):
    """Drops duplicates, and integer where number is there too."""
    out = []
    for form in forms:
        if form and form not in out:
            out.append(form)
    if NUMBER in out and INTEGER in out:
        out.remove(INTEGER)
    return out


def _one(forms):
    forms = [f for f in forms if f]
    if not forms or any(f == {} for f in forms):
        return {}
    return forms[0] if len(forms) == 1 else {"anyOf": forms}


def _vocabulary(probe, name):
    """The strings a closed-vocabulary argument takes, in a stable order; None if the layer
    keeps any string, [] if the vocabulary is open (initializer names, ...)."""
    message = probe.error(name, SENTINEL)
    if message is None:
        return None
    # "must be one of ('valid', 'same'), got ..." / "must be either 'valid' or 'same'.
    # Received: ...": a closed list; "valid policies include ..." is not one.
    listed = re.search(r"(?:one of|either)(.*?)(?:\bgot\b|\bReceived\b|$)", message, re.S)
    candidates = list(VOCABULARIES.get(name, ()))
    candidates += re.findall(r"'([^'\s]+)'", listed.group(1)) if listed else []
    words = []
    for word in candidates:
        if word != SENTINEL and word not in words and probe.accepts(name, word):
            words.append(word)
    return words


def _any_case(words):
    """A case-insensitive pattern for `words` (JSON Schema patterns have no flags)."""
    def one(word):
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)
    return "^(?:" + "|".join(one(w) for w in words) + ")$"


_NOT_JSON = object()


def _json_value(value):
    """`value` as JSON (tuples become lists), or _NOT_JSON."""
    if value is inspect.Parameter.empty:
        return _NOT_JSON
    if isinstance(value, tuple):
        value = [_json_value(v) for v in value]
        return _NOT_JSON if _NOT_JSON in value else value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return _NOT_JSON
    return value


class _Probe:
    """Asks a layer class whether it takes an argument value, the way `Plan` checks a layer:
    `resolve_args`, construct (no weights), infer the output shape of a small input."""

    def __init__(self, cls, required):
        self.cls, self.base, self.shape = cls, None, None
        for filler in FILLERS:
            base = {name: filler for name in required}
            layer, _ = self._layer(base)
            if layer is not None:
                self.base = base
                break
        if self.base is None:
            return  # not even the fillers construct: nothing is probed for this class
        spec_ = getattr(layer, "input_spec", None)
        ndim = getattr(spec_, "ndim", None) or getattr(spec_, "min_ndim", None)
        if ndim:
            shape = (None,) + (SPATIAL,) * (ndim - 2) + (CHANNELS,) if ndim >= 2 else (None,)
            if self._shape_error(layer, shape) is None:
                self.shape = shape

    @property
    def active(self):
        return self.base is not None

    def accepts(self, name, value):
        return self.error(name, value) is None

    def error(self, name, value):
        """None if the layer takes `name=value`, else the error message."""
        layer, message = self._layer(dict(self.base, **{name: value}))
        if layer is None:
            return message
        return self._shape_error(layer, self.shape) if self.shape else None

    def _layer(self, args):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # A name, so that probing doesn't advance Keras's automatic layer names.
                return self.cls(name="schema_probe", **resolve_args(args)), None
        except Exception as err:  # noqa: BLE001 - any failure: the builder won't take it
            return None, str(err)

    @staticmethod
    def _shape_error(layer, shape):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                layer.compute_output_shape(shape)
        except NotImplementedError:
            return None  # Plan treats it as an unknown shape, not an error
        except Exception as err:  # noqa: BLE001
            return str(err)
        return None
