"""Layer-type resolution, argument checks, shape inference and model building."""

import inspect
import os

import keras

from keras_convx import constraints, regularizers
from keras_convx import layers as kcl
from keras_convx.model_config.loader import ConfigError, load
from keras_convx.model_config.spec import Expander, hint

# Keras layers a config may use besides keras_convx's (an allowlist: no Lambda, no code).
KERAS_ALLOWLIST = (
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "BatchNormalization",
    "LayerNormalization", "GroupNormalization", "UnitNormalization", "Dense", "Flatten",
    "Reshape", "Permute", "RepeatVector", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity",
    "Rescaling", "Normalization", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "LSTM", "GRU", "Bidirectional",
)
BASE_KWARGS = ("dtype", "trainable", "autocast")
INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int32", "int64", "uint8")
_USER_TYPES = {}


def register_layer(cls, name=None):
    """Makes a Keras layer class usable as `type: <name>` in configs.

    Args:
        cls: a `keras.layers.Layer` subclass (registered serializable for `.keras` files).
        name: the config name; defaults to the class name.
    """
    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        raise TypeError(f"register_layer: cls must be a keras.layers.Layer subclass, got {cls!r}")
    name = name or cls.__name__
    existing = layer_types().get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"register_layer: type {name!r} is already {existing.__module__}."
                         f"{existing.__name__}")
    _USER_TYPES[name] = cls
    return cls


def layer_types():
    """Config type name -> layer class: keras_convx first, then the Keras allowlist, then user ones."""
    types = {name: getattr(keras.layers, name) for name in KERAS_ALLOWLIST}
    for name in kcl.__all__:
        cls = getattr(kcl, name)
        if not name.startswith(("Base", "Windowed", "Spatial")):
            types[name] = cls
    types.update({cls.__name__: cls for cls in kcl.CONFIG_TYPES})
    types.update(_USER_TYPES)
    return types


def constructor_parameters(cls):
    """The `inspect.Parameter`s a config may pass to a layer class, without `BASE_KWARGS`
    (`*`/`**` parameters don't count)."""
    return [p for p in inspect.signature(cls).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def signature_params(cls):
    """(all argument names, required ones) of a layer class's constructor."""
    params = constructor_parameters(cls)
    names = [p.name for p in params] + list(BASE_KWARGS)
    required = [p.name for p in params if p.default is p.empty]
    return names, required


def _initializer(value):
    if isinstance(value, dict) and len(value) == 1 and "class_name" not in value:
        (name, args), = value.items()
        return keras.initializers.get({"class_name": name, "config": args or {}})
    return keras.initializers.get(value)


def _wrapped_layer(value):
    """The layer a wrapper takes (Bidirectional's `layer`), as `{Type: {args}}` of a config
    type: `layer: {LSTM: {units: 64, return_sequences: true}}`."""
    if not (isinstance(value, dict) and len(value) == 1):
        raise ValueError(f"a wrapped layer is written {{Type: {{args}}}}, got {value!r}")
    (name, args), = value.items()
    cls = layer_types().get(name)
    if cls is None:
        raise ValueError(f"unknown wrapped layer type {name!r}")
    if args is not None and not isinstance(args, dict):
        raise ValueError(f"the args of wrapped layer {name} must be a mapping, got {args!r}")
    # a fixed name (Bidirectional calls its copies forward_<name>, backward_<name>), so a
    # config builds the same layer configs every time
    return cls(**{"name": name.lower(), **resolve_args(args or {})})


# Arguments given by name or as `{Name: {args}}`, by the suffix of their key.
ARG_RESOLVERS = {"_initializer": _initializer, "_regularizer": regularizers.get,
                 "_constraint": constraints.get, "layer": _wrapped_layer}


def resolve_args(args):
    """Turns `{Name: {args}}` initializers, regularizers and constraints into objects."""
    out = {}
    for key, value in args.items():
        resolver = None
        if value is not None and isinstance(key, str):
            resolver = next((fn for suffix, fn in ARG_RESOLVERS.items() if key.endswith(suffix)),
                            None)
        out[key] = resolver(value) if resolver else value
    return out


class Plan:
    """A validated config: layer specs in order, their classes, and inferred shapes."""

    def __init__(self, source, overrides=None, scale=None):
        self.data, self.located = load(source)
        self.base_dir = (os.path.dirname(os.path.abspath(self.located.source))
                         if os.path.exists(self.located.source) else os.getcwd())
        expander = Expander(self.data, self.located, overrides, scale)
        self.specs, last = expander.expand()
        self.variables = expander.variables
        self.inputs = self._inputs(expander.inputs)
        self.types = layer_types()
        self.order = self._topological()
        self.layers = {}
        self.shapes = {name: (None,) + tuple(shape) for name, (shape, _) in self.inputs.items()}
        for spec in self.order:
            self._check(spec)
        self.outputs = self._outputs(last)

    def _inputs(self, inputs):
        out = {}
        for name, spec in inputs.items():
            path = ("inputs", name)
            shape = spec.get("shape")
            if not isinstance(shape, list) or not all(
                    d is None or isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
                raise self.located.error(path + ("shape",), f"shape must be a list of positive ints "
                                         f"or null (no batch dim), got {shape!r}")
            dtype = spec.get("dtype", "float32")
            if dtype not in INPUT_DTYPES:
                raise self.located.error(path + ("dtype",), f"unsupported dtype {dtype!r}")
            out[name] = (tuple(shape), dtype)
        return out

    def _topological(self):
        by_name = {s.name: s for s in self.specs}
        known = set(self.inputs) | set(by_name)
        for spec in self.specs:
            for i, name in enumerate(spec.inputs):
                if name not in known:
                    raise self._error(spec, ("inputs",), f"unknown input name "
                                      f"{name!r}{hint(name, known)}")
        order, state = [], {}

        def visit(spec, trail):
            if state.get(spec.name) == "done":
                return
            if state.get(spec.name) == "active":
                cycle = trail[trail.index(spec.name):] + [spec.name]
                raise self._error(spec, ("inputs",), "cycle: " + " -> ".join(cycle))
            state[spec.name] = "active"
            for name in spec.inputs:
                if name in by_name:
                    visit(by_name[name], trail + [spec.name])
            state[spec.name] = "done"
            order.append(spec)

        for spec in self.specs:
            visit(spec, [])
        return order

    def _error(self, spec, subpath, message):
        return self.located.error(spec.path + tuple(subpath), message, spec.path, spec.name)

    def _check(self, spec):
        if not isinstance(spec.type, str) or spec.type not in self.types:
            if spec.type == "Lambda":
                raise self._error(spec, ("type",), "unknown layer type 'Lambda': configs don't "
                                  "run Python code (nor does safe-mode loading); write a layer "
                                  "class and register it with keras_convx.register_layer")
            if isinstance(spec.type, str) and isinstance(getattr(keras.layers, spec.type, None),
                                                         type):
                raise self._error(spec, ("type",), f"{spec.type} is a Keras layer but not "
                                  f"allowed in configs; register it with "
                                  f"keras_convx.register_layer(keras.layers.{spec.type})")
            raise self._error(spec, ("type",), f"unknown layer type {spec.type!r}"
                              f"{hint(spec.type, self.types)}")
        cls = self.types[spec.type]
        allowed, required = signature_params(cls)
        for key in spec.args:
            if key not in allowed:
                raise self._error(spec, ("args", key), f"unknown argument of {spec.type}"
                                  f"{hint(key, allowed)}")
        missing = [r for r in required if r not in spec.args]
        if missing:
            raise self._error(spec, ("args",), f"missing required argument(s) "
                              f"{missing} of {spec.type}")
        resolved = {}
        for key, value in spec.args.items():
            try:
                resolved.update(resolve_args({key: value}))
            except (ValueError, TypeError) as err:
                raise self._error(spec, ("args", key), str(err).splitlines()[0]) from None
        try:
            layer = cls(name=spec.name, **resolved)
        except (ValueError, TypeError) as err:
            named = [k for k in spec.args if k in str(err)]
            message = str(err)
            quoted = [k for k in named if isinstance(spec.args[k], str)]
            if quoted:  # Keras prints units=10 for the string "10": say what was written
                message += (f" (the config gives {quoted[0]} as the string "
                            f"{spec.args[quoted[0]]!r}: remove the quotes for a number)")
            raise self._error(spec, ("args",) + tuple(named[:1]), message) from None
        self.layers[spec.name] = layer
        shapes = [self.shapes[name] for name in spec.inputs]
        if any(shape is None for shape in shapes):  # after a layer that can't say its shape
            self.shapes[spec.name] = None
            return
        try:
            arg = shapes if len(shapes) > 1 or _takes_list(layer) else shapes[0]
            shape = layer.compute_output_shape(arg)
        except NotImplementedError:
            shape = None
        except (ValueError, TypeError, IndexError) as err:
            detail = " and ".join(str(tuple(s)) for s in shapes)
            raise self._error(spec, (), f"{spec.type} can't take input shape(s) {detail}: "
                              f"{str(err).splitlines()[0]}") from None
        self.shapes[spec.name] = tuple(shape) if shape is not None else None

    def _outputs(self, last):
        outputs = self.data.get("outputs")
        layer_names = {s.name for s in self.specs}
        if outputs is None:
            return {last[0]: last[0]}
        if isinstance(outputs, str):
            outputs = [outputs]
        if isinstance(outputs, list):
            outputs = {name: name for name in outputs}
        if not isinstance(outputs, dict):
            raise self.located.error(("outputs",), "outputs must be a name, a list or a mapping "
                                     "of output name -> layer name")
        for key, name in outputs.items():
            if name not in layer_names:
                raise self.located.error(("outputs", key), f"unknown layer {name!r}"
                                         f"{hint(name, layer_names)}")
        return outputs

    def build(self):
        """Builds the Keras model (creating weights), then loads `weights:` if given."""
        tensors = {name: keras.Input(shape, dtype=dtype, name=name)
                   for name, (shape, dtype) in self.inputs.items()}
        model_inputs = list(tensors.values())
        for spec in self.order:
            args = [tensors[name] for name in spec.inputs]
            layer = self.layers[spec.name]
            arg = args if len(args) > 1 or _takes_list(layer) else args[0]
            try:
                tensors[spec.name] = layer(arg)
            except (ValueError, TypeError) as err:
                raise self._error(spec, (), f"{spec.type}: {str(err).splitlines()[0]}") from None
        outputs = [tensors[name] for name in self.outputs.values()]
        model = keras.Model(model_inputs if len(model_inputs) > 1 else model_inputs[0],
                            outputs if len(outputs) > 1 else outputs[0],
                            name=self.data.get("name", "model"))
        weights = self.data.get("weights")
        if weights:
            path = weights if os.path.isabs(weights) else os.path.join(self.base_dir, weights)
            try:
                model.load_weights(path)
            except (OSError, ValueError) as err:
                raise self.located.error(("weights",), f"can't load weights {path!r}: "
                                         f"{str(err).splitlines()[0]}") from None
        return model


def _takes_list(layer):
    return isinstance(layer, (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply,
                              keras.layers.Average, keras.layers.Maximum, keras.layers.Minimum,
                              keras.layers.Concatenate, kcl.CropToMatch))


def build_model(source, scale=None, **overrides):
    """Builds a Keras model from a YAML config (path, YAML text or dict).

    Args:
        source: a `.yaml` path, YAML text, or an already-loaded dict.
        scale: a scale preset name from the config's `scales`.
        **overrides: variable values (as `--set name=value` on the command line).

    Returns:
        A `keras.Model`. Raises `ConfigError` (`file:line:col: key.path: message`) on any problem.
    """
    return Plan(source, overrides, scale).build()


def validate(source, scale=None, **overrides):
    """Checks a config completely (types, arguments, connectivity, shapes) without building
    weights; returns the `Plan` (layer specs and inferred output shapes)."""
    return Plan(source, overrides, scale)


__all__ = ["ConfigError", "build_model", "validate", "register_layer", "layer_types"]
