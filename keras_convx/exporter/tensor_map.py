"""Naming Keras tensors so that an exported graph can say which ONNX tensor holds each.

A key is `operation:node_index:tensor_index`, Keras's own history of a tensor, so it
names `keras.ops` nodes (which have no layer) and each call of a shared layer; tensors
inside a traced layer or a nested model are `<its key>/<inner key>` (`trace`). Keys
are stored in the ONNX file's metadata and resolved again in the model the file is
verified against, which may be a fresh load in another process.
"""

import weakref

import keras

from keras_convx.exporter import trace
from keras_convx.verification import correspondence
from keras_convx.verification.keras_runner import KerasRunner

METADATA_KEY = correspondence.KEY
_CACHE = weakref.WeakKeyDictionary()


def subclassed(model):
    """Whether `model` is a subclassed model: a `keras.Model` with its own `call` and no
    Functional graph."""
    return (isinstance(model, keras.Model) and not isinstance(model, keras.Sequential)
            and not hasattr(model, "_nodes_by_depth"))


def functional(model, input_shapes=None):
    """The Functional graph of a Functional or (built) Sequential model; a subclassed
    model becomes a Functional model of one node, itself, traced through its `call` when
    flattened (`subclassed.as_functional`; `input_shapes` without batch, else the shapes it
    was built or called with).

    Raises:
        ValueError: not a Keras model, a Sequential model never built, a subclassed
            model whose input shape is unknown.
        Unsupported: a subclassed model whose `call` can't be traced (not on TensorFlow).
    """
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise ValueError("export: build the Sequential model with an input shape first")
        return model._functional
    if subclassed(model):
        from keras_convx.exporter.subclassed import as_functional

        return as_functional(model, input_shapes)
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(f"export: model must be a Keras model (Functional, Sequential or "
                         f"subclassed), got {type(model).__name__}")
    return model


def flat_graph(model, batch=None):
    """The model as a flat graph of operations that have lowerings (`trace.flatten`):
    composite layers traced through their `call`, nested models inlined. `batch`: the
    export's static batch size (None: dynamic). A subclassed model whose `call` can't be
    traced is one problem of an empty graph."""
    from keras_convx.exporter import registry

    try:
        fmodel = functional(model)
    except trace.Unsupported as err:
        return trace.FlatGraph([], [], [], [(model.name, trace.describe(model), str(err))], [])
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
    return trace.run(flat, arrays, forced)


class TracedRunner(KerasRunner):
    """The Keras side of verification for a model the exporter can trace: its outputs
    and every tensor of its flat graph (composite layers traced through `call`, nested
    models inlined), so each tensor the file maps is compared.

    Args:
        model: the Keras model (Functional, Sequential or subclassed).
    """

    maps_tensors = True

    def functional(self):
        return functional(self.model)

    def flat_graph(self, batch=None):
        return flat_graph(self.model, batch)

    def resolve(self, keys, batch=None):
        return resolve(self.model, keys, batch)

    def run_flat(self, flat, arrays, forced=None):
        return run(flat, arrays, forced)


def read(onnx_model):
    """The tensor map stored in an exported file, as `correspondence.Row`s ([] for
    graphs from other exporters)."""
    props = {p.key: p.value for p in onnx_model.metadata_props}
    return correspondence.loads(props.get(METADATA_KEY, "[]"))
