"""Naming Keras tensors so that an exported graph can say which ONNX tensor holds each.

A key is `operation:node_index:tensor_index`, Keras's own history of a tensor, so it
names `keras.ops` nodes (which have no layer) and each call of a shared layer; tensors
inside a traced layer or a nested model are `<its key>/<inner key>` (`trace`). Keys
are stored in the ONNX file's metadata and resolved again in the model the file is
verified against, which may be a fresh load in another process.
"""

import json
import weakref

import keras

METADATA_KEY = "keras_convx.tensors"
_CACHE = weakref.WeakKeyDictionary()


def functional(model):
    """The Functional graph of a Functional or (built) Sequential model."""
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise ValueError("export: build the Sequential model with an input shape first")
        return model._functional
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            f"export: model must be a Functional or Sequential Keras model, got "
            f"{type(model).__name__} (subclassed models have no graph to lower: use "
            f"method='tf2onnx')"
        )
    return model


def flat_graph(model, batch=None):
    """The model as a flat graph of operations that have lowerings (`trace.flatten`):
    composite layers traced through their `call`, nested models inlined. `batch`: the
    export's static batch size (None: dynamic)."""
    from keras_convx.exporter import registry, trace

    fmodel = functional(model)
    # traced once per model and set of lowerings (export, then verification, reuse it)
    version = (len(registry.LOWERINGS), batch)
    cached = _CACHE.setdefault(fmodel, {})
    if version not in cached:
        cached[version] = trace.flatten(fmodel, lambda op: registry.find(op) is not None,
                                        trace.describe, batch)
    return cached[version]


def resolve(model, keys, batch=None):
    """{key: (KerasTensor, FlatNode)} for the keys that name a tensor of `model`'s flat
    graph (traced and inlined tensors included)."""
    found = flat_graph(model, batch).by_key()
    return {key: found[key] for key in keys if key in found}


def run(flat, arrays, forced=None):
    """Runs a flat graph eagerly (`trace.run`): verification's Keras runner calls it."""
    from keras_convx.exporter import trace

    return trace.run(flat, arrays, forced)


def read(onnx_model):
    """The tensor map stored in an exported file ([] for graphs from other exporters)."""
    props = {p.key: p.value for p in onnx_model.metadata_props}
    return json.loads(props.get(METADATA_KEY, "[]"))
