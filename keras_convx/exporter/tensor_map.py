"""Naming Keras tensors so that an exported graph can say which ONNX tensor holds each.

A key is `operation:node_index:tensor_index`, Keras's own history of a tensor, so it
names `keras.ops` nodes (which have no layer) and each call of a shared layer. Keys
are stored in the ONNX file's metadata and resolved again in the model the file is
verified against, which may be a fresh load in another process.
"""

import json

import keras

METADATA_KEY = "keras_convx.tensors"


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


def tensor_key(keras_tensor):
    operation, node_index, tensor_index = keras_tensor._keras_history
    return f"{operation.name}:{node_index}:{tensor_index}"


def resolve(model, keys):
    """{key: (KerasTensor, operation)} for the keys that name a tensor of `model`."""
    fmodel = functional(model)
    operations = {op.name: op for op in fmodel.operations}
    found = {}
    for key in keys:
        name, node_index, tensor_index = key.rsplit(":", 2)
        op = operations.get(name)
        nodes = getattr(op, "_inbound_nodes", [])
        if op is None or int(node_index) >= len(nodes):
            continue
        outputs = nodes[int(node_index)].outputs
        if int(tensor_index) < len(outputs):
            found[key] = (outputs[int(tensor_index)], op)
    return found


def read(onnx_model):
    """The tensor map stored in an exported file ([] for graphs from other exporters)."""
    props = {p.key: p.value for p in onnx_model.metadata_props}
    return json.loads(props.get(METADATA_KEY, "[]"))
