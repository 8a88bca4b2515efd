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


def _args(layer):
    """The layer's arguments minus every one whose omission rebuilds the same config.

    Tried one at a time against a fresh instance, so dependent defaults (MaxPooling's
    strides default to its pool_size) are kept when they matter.
    """
    config = layer.get_config()
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


def _type_name(layer, types):
    for name, cls in types.items():
        if type(layer) is cls:
            return name
    raise ValueError(
        f"to_yaml: layer {layer.name!r} is a {type(layer).__module__}.{type(layer).__name__}, "
        f"which configs can't express (register it with keras_convx.register_layer)"
    )


def to_dict(model):
    """The config of a Functional or Sequential model as a dict (see `to_yaml`)."""
    from keras_convx.convert import SHADOWED, convert

    if any(type(layer).__name__ in SHADOWED and type(layer).__module__.startswith("keras.")
           for layer in getattr(model, "layers", [])):
        model = convert(model)  # keras.layers' conv family -> the equivalents configs know
    if isinstance(model, keras.Sequential):
        model = model._functional if model._functional is not None else None
        if model is None:
            raise ValueError("to_yaml: build the Sequential model with an input shape first")
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(f"to_yaml: needs a Functional or Sequential model, got {type(model).__name__}")
    types = layer_types()
    inputs = {}
    for kt in model.inputs:
        entry = {"shape": list(kt.shape[1:])}
        if kt.dtype != "float32":
            entry["dtype"] = kt.dtype
        inputs[kt._keras_history.operation.name] = entry
    layers, previous = [], list(inputs)[-1]
    seen = set()
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.operation
            if node.is_input or layer is None:
                continue
            if layer.name in seen:
                raise ValueError(f"to_yaml: layer {layer.name!r} is called more than once "
                                 f"(shared layers can't be expressed)")
            if isinstance(layer, keras.Model):
                raise ValueError(f"to_yaml: nested model {layer.name!r} is not supported")
            if node.arguments.kwargs and any(v is not None for k, v in node.arguments.kwargs.items()
                                             if k not in ("training", "mask")):
                raise ValueError(f"to_yaml: layer {layer.name!r} is called with keyword "
                                 f"arguments, which configs can't express")
            seen.add(layer.name)
            entry = {"type": _type_name(layer, types), "name": layer.name}
            args = _args(layer)
            if args:
                entry["args"] = args
            sources = [kt._keras_history.operation.name for kt in node.input_tensors]
            if sources != [previous]:
                entry["inputs"] = sources[0] if len(sources) == 1 else sources
            layers.append(entry)
            previous = layer.name
    outputs = [kt._keras_history.operation.name for kt in model.outputs]
    config = {"version": FORMAT_VERSION, "name": model.name, "inputs": inputs, "layers": layers}
    if outputs != [previous]:
        config["outputs"] = outputs
    return config


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

    Keras's own convolution-family and reshaping layers are taken as their keras_convx
    equivalents (`keras_convx.convert`), so e.g. any `keras.applications` model made of
    allowed layers serializes.

    Arguments equal to their defaults are omitted; `inputs` is written only where a
    layer does not simply take the previous layer's output. Weights are not included
    (save them with `model.save_weights` and name the file under `weights:`).
    """
    return yaml.dump(to_dict(model), Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     width=100)
