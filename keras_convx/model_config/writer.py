"""`to_yaml(model)`: a short, readable config (defaults omitted) that rebuilds the model."""

import keras
import yaml

from keras_convx.model_config.builder import layer_types, signature_params
from keras_convx.model_config.spec import FORMAT_VERSION

_DROP = ("name", "trainable", "dtype")


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        if "class_name" in value and "config" in value:
            config = {k: _plain(v) for k, v in (value["config"] or {}).items() if v is not None}
            return {value["class_name"]: config} if config else value["class_name"]
        return {k: _plain(v) for k, v in value.items()}
    return value


def _comparable(config):
    return {k: _plain(v) for k, v in config.items() if k != "name"}


def _args(layer, cache=None):
    """The layer's arguments minus every one whose omission rebuilds the same config.

    Tried one at a time against a fresh instance, so dependent defaults (MaxPooling's
    strides default to its pool_size) are kept when they matter. `cache` (a dict) keeps
    the answer per class and config: applications repeat a few configs hundreds of times
    (DenseNet121: 428 layers, 3,800 trial instances without it).
    """
    config = layer.get_config()
    if cache is not None:
        key = (type(layer), repr(_comparable(config)), layer.dtype_policy.name)
        if key not in cache:
            cache[key] = _args(layer)
        return dict(cache[key])
    if isinstance(layer, keras.layers.Bidirectional):
        return _wrapper_args(layer, config, cache)
    names, required = signature_params(type(layer))
    args = {k: v for k, v in config.items() if k in names and k not in _DROP}
    target = _comparable(config)
    for key in [k for k in list(args) if k not in required]:
        trial = {k: v for k, v in args.items() if k != key}
        try:
            same = _comparable(type(layer)(**trial).get_config()) == target
        except (TypeError, ValueError):
            same = False
        if same:
            args = trial
    args = {k: _plain(v) for k, v in args.items()}
    policy = layer.dtype_policy.name
    if policy != keras.config.dtype_policy().name:
        args["dtype"] = policy
    if not layer.trainable:
        args["trainable"] = False
    return args


def _wrapper_args(layer, config, cache):
    """Bidirectional: its layer as `{Type: {args}}` (the builder's form), the backward
    layer only when it is not the forward one run backwards."""
    inner = layer.forward_layer
    # Bidirectional sets the copies' zero_output_for_mask itself: not an argument of ours
    given = type(inner).from_config({k: v for k, v in inner.get_config().items()
                                     if k != "zero_output_for_mask"})
    args = {"layer": {_type_name(inner, layer_types()): _args(given, cache)}}
    mirrored = dict(layer.backward_layer.get_config(), name=None,
                    go_backwards=not layer.backward_layer.go_backwards)
    if _comparable(mirrored) != _comparable(dict(inner.get_config(), name=None)):
        args["backward_layer"] = {_type_name(layer.backward_layer, layer_types()):
                                  _args(layer.backward_layer, cache)}
    if config.get("merge_mode") != "concat":
        args["merge_mode"] = config.get("merge_mode")
    if not layer.trainable:
        args["trainable"] = False
    return args


def _type_name(layer, types):
    for name, cls in types.items():
        if type(layer) is cls:
            return name
    raise ValueError(
        f"to_yaml: layer {layer.name!r} is a {type(layer).__module__}.{type(layer).__name__}, "
        f"which configs can't express (register it with keras_convx.register_layer)"
    )


# keras.ops nodes in Functional graphs (`x + y`, `x * 0.5`) and the allowlisted layer that
# computes exactly the same values: merging layers for two tensors of one shape, Rescaling
# (x * scale + offset, where x * 1.0 and + 0.0 change no value) for a tensor and a number.
# Division is left out: x / c and x * (1 / c) differ in the last bit.
_MERGES = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply", "Maximum": "Maximum",
           "Minimum": "Minimum"}


def _rescaling(op_name, tensor_first, number):
    """(scale, offset) of the Rescaling equal to `op_name` of a tensor and a number."""
    number = float(number)
    if op_name == "Add":
        return 1.0, number
    if op_name == "Multiply":
        return number, 0.0
    if op_name == "Subtract":
        return (1.0, -number) if tensor_first else (-1.0, number)
    return None


def _op_entry(node):
    """The config entry (without name) and input tensors equal to a keras.ops node, or None."""
    op = node.operation
    kind = type(op).__name__
    if not type(op).__module__.startswith("keras.src.ops.") or kind not in _MERGES:
        return None
    args = node.arguments.args
    if len(args) != 2 or any(v is not None for v in node.arguments.kwargs.values()):
        return None
    tensors = [a for a in args if isinstance(a, keras.KerasTensor)]
    if len(tensors) == 2 and tuple(tensors[0].shape) == tuple(tensors[1].shape):
        return {"type": _MERGES[kind]}, tensors
    numbers = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if len(tensors) == 1 and len(numbers) == 1 and tensors[0].dtype == "float32":
        scale_offset = _rescaling(kind, args[0] is tensors[0], numbers[0])
        if scale_offset is not None:
            scale, offset = scale_offset
            args = {"scale": scale} if offset == 0.0 else {"scale": scale, "offset": offset}
            return {"type": "Rescaling", "args": args}, tensors
    return None


def _functional(model, where):
    if isinstance(model, keras.Sequential):
        model = model._functional
        if model is None:
            raise ValueError(f"to_yaml: {where}: build the Sequential model with an input "
                             f"shape first")
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(f"to_yaml: {where}: needs a Functional or Sequential model, got "
                         f"{type(model).__name__}")
    return model


def to_dict(model):
    """The config of a Functional or Sequential model as a dict (see `to_yaml`).

    Nested Functional and Sequential models are written inline (their layers keep their
    names); `keras.ops` nodes are written as the allowlisted layer that computes the same
    values (`x + y` as Add, `x * 0.5` or `x + 3.0` as Rescaling) under the node's name.
    """
    model = _functional(model, "the model")
    types = layer_types()
    inputs = {}
    for kt in model.inputs:
        entry = {"shape": list(kt.shape[1:])}
        if kt.dtype != "float32":
            entry["dtype"] = kt.dtype
        inputs[kt._keras_history.operation.name] = entry
    entries = _Entries(types, previous=list(inputs)[-1])
    entries.walk(model)
    outputs = [entries.source(kt) for kt in model.outputs]
    config = {"version": FORMAT_VERSION, "name": model.name, "inputs": inputs,
              "layers": entries.layers}
    if outputs != [entries.previous]:
        config["outputs"] = outputs
    return config


class _Entries:
    """The config's layer entries of a Functional graph, in execution order, nested models
    inlined; `previous` names the last one (an entry that takes it needs no `inputs`)."""

    def __init__(self, types, previous):
        self.types, self.previous = types, previous
        self.layers, self.seen, self.known = [], set(), {}
        self.alias = {}  # a nested model's input and output names -> the names the config uses

    def source(self, kt):
        name = kt._keras_history.operation.name
        while name in self.alias:
            name = self.alias[name]
        return name

    def add(self, entry, sources):
        if sources != [self.previous]:
            entry["inputs"] = sources[0] if len(sources) == 1 else sources
        self.layers.append(entry)
        self.previous = entry["name"]

    def walk(self, graph):
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                layer = node.operation
                if node.is_input or layer is None:
                    continue
                if layer.name in self.seen:
                    raise ValueError(f"to_yaml: layer {layer.name!r} is called more than once "
                                     f"(shared layers can't be expressed)")
                self.seen.add(layer.name)
                if isinstance(layer, keras.Model):
                    self._nested(layer, node)
                elif not isinstance(layer, keras.layers.Layer):
                    self._operation(layer, node)
                else:
                    self._layer(layer, node)

    def _nested(self, model, node):
        inner = _functional(model, f"nested model {model.name!r}")
        if len(inner.inputs) != len(node.input_tensors) or len(inner.outputs) != 1:
            raise ValueError(f"to_yaml: nested model {model.name!r} must take its "
                             f"inputs as given and have one output")
        for kt, outer in zip(inner.inputs, node.input_tensors):
            self.alias[kt._keras_history.operation.name] = self.source(outer)
        self.walk(inner)
        self.alias[model.name] = self.source(inner.outputs[0])

    def _operation(self, op, node):
        found = _op_entry(node)
        if found is None:
            raise ValueError(
                f"to_yaml: {op.name!r} is a keras.ops.{type(op).__name__} "
                f"call that no allowlisted layer computes exactly (configs express "
                f"+, -, * and max/min of two same-shape tensors, and +, -, * with "
                f"a number)")
        entry, tensors = found
        self.add({"type": entry["type"], "name": op.name,
                  **({"args": entry["args"]} if "args" in entry else {})},
                 [self.source(kt) for kt in tensors])

    def _layer(self, layer, node):
        from keras_convx.conversion import ours

        if node.arguments.kwargs and any(v is not None for k, v in
                                         node.arguments.kwargs.items()
                                         if k not in ("training", "mask")):
            raise ValueError(f"to_yaml: layer {layer.name!r} is called with keyword "
                             f"arguments, which configs can't express")
        # keras.layers' conv family: written as the keras_convx equivalent (its
        # config, unbuilt: no weights are made), which the config format knows
        layer = ours(layer)
        entry = {"type": _type_name(layer, self.types), "name": layer.name}
        args = _args(layer, self.known)
        if args:
            entry["args"] = args
        self.add(entry, [self.source(kt) for kt in node.input_tensors])


class _Dumper(yaml.SafeDumper):
    pass


def _flow_lists(dumper, data):
    flow = all(not isinstance(v, (list, dict)) or isinstance(v, list) and
               all(not isinstance(w, (list, dict)) for w in v) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _flow_args(dumper, data):
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=None)


_Dumper.add_representer(list, _flow_lists)


def to_yaml(model):
    """Serializes a Functional or Sequential model made of known layers to YAML text.

    Keras's own convolution-family and reshaping layers are written as their keras_convx
    equivalents (as `keras_convx.convert` would make them), nested models inline, and
    `keras.ops` nodes (`x + y`, `x * 0.5`) as the allowlisted layer computing the same
    values, so every `keras.applications` model serializes; ConvNeXt's `LayerScale` and
    InceptionResNetV2's `CustomScaleLayer` only once registered (`register_layer`).

    Arguments equal to their defaults are omitted; `inputs` is written only where a
    layer does not simply take the previous layer's output; one entry per layer
    (repeated structure is not folded into `repeat` or blocks). Weights are not included:
    save them with `model.save_weights` and name the file under `weights:`, or copy
    them by layer name (`keras_convx.copy_weights(model, rebuilt)`).
    """
    return yaml.dump(to_dict(model), Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     width=100)
