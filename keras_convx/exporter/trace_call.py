"""Tracing one layer's `call` on fresh KerasTensors into a `keras.Function` (`trace_call`):
the traces of one flatten kept by layer and signature, the session that installs the
patches of `trace_patches` on its first trace and removes them when it ends, the output
specs of composite sublayers taken from such traces, and the words for why a trace
stopped."""

import contextlib
import linecache
import os
import sys
import traceback

import keras

from keras_convx.exporter.graph import Unsupported
from keras_convx.exporter.trace_patches import (
    _SAVED_SEEDS, _SESSION, _building, _call_kwargs, _defer, _inline_untraceable,
    _RandomAtInference, _random_guard, _spec_from_shape, _substitutes, _swap,
    _variable_dunders,
)


# The batch size a `call` that computes with the batch as a number (`ops.tile(token,
# (batch, 1, 1))`, reshapes to batch * heads) is traced with under a dynamic batch: a prime
# no real size is a multiple of, so the lowering can tell its multiples in the graph's
# constants and compute them from the input's batch instead (`passes.dynamic_batch`).
BATCH_SYMBOL = 9973


def trace_call(layer, node, batch=None):
    """A `keras.Function` of `layer.call` on fresh symbolic inputs shaped like `node`'s
    (with batch size `batch` where the batch is unknown, if given).

    Raises:
        Unsupported: the call can't be traced; the message names the line of `call`
            where it stopped and why.
    """
    specs = {id(t): keras.KerasTensor((batch if batch and t.shape[0] is None else t.shape[0],)
                                      + tuple(t.shape[1:]), t.dtype) for t in node.input_tensors}
    args, kwargs = node.arguments.fill_in(specs)
    outputs, fn = _traced(layer, args, kwargs)
    flat = keras.tree.flatten(outputs)
    if fn is None or len(flat) != len(node.outputs):
        raise Unsupported(f"its traced call returned {len(flat)} value(s), not the "
                          f"{len(node.outputs)} tensor(s) of the layer's output")
    return fn


_TRACES = {}  # one flatten's traces, by layer and call signature: each call traced once


def _key(layer, args, kwargs):
    kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
    return id(layer), repr(keras.tree.map_structure(
        lambda t: ("tensor", tuple(t.shape), str(t.dtype))
        if isinstance(t, keras.KerasTensor) else t, (args, kwargs)))


def _entry_point(like):
    """A KerasTensor shaped like `like` that starts a graph (as Keras marks the inputs of a
    node that have no history: an unused input then maps like an InputLayer's)."""
    from keras.src.ops.node import KerasHistory

    tensor = keras.KerasTensor(like.shape, like.dtype)
    tensor._keras_history = KerasHistory(operation=None, node_index=0, tensor_index=0)
    return tensor


def _traced(layer, args, kwargs):
    """(outputs, keras Function or None) of `layer.call` on fresh KerasTensors like the
    ones in `args`/`kwargs`; the Function is None when an output is not a tensor."""
    key = _key(layer, args, kwargs)
    if key in _TRACES:
        return _TRACES[key]
    tensors = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
    fresh = {id(t): _entry_point(t) for t in tensors}
    args, kwargs = keras.tree.map_structure(
        lambda t: fresh[id(t)] if isinstance(t, keras.KerasTensor) else t, (args, kwargs))
    before = _node_counts(layer)
    try:
        outputs = _symbolic_call(layer, args, kwargs)
        fn = None
        flat = keras.tree.flatten(outputs)
        if flat and all(isinstance(t, keras.KerasTensor) for t in flat):
            from keras.src.ops.function import Function

            try:  # reads the new nodes: before they are removed
                fn = Function([fresh[id(t)] for t in tensors], flat)
            except ValueError as err:
                raise Unsupported(f"its traced call's outputs don't depend on its inputs "
                                  f"only: {str(err).splitlines()[0]}") from None
    finally:
        _restore_node_counts(before)
    _TRACES[key] = outputs, fn
    return outputs, fn


@contextlib.contextmanager
def _session():
    """One flatten (or wrap): the trace's patches, installed by its first trace, are
    removed and its traces forgotten when the outermost session ends."""
    _SESSION["depth"] += 1
    try:
        yield
    finally:
        _SESSION["depth"] -= 1
        if _SESSION["depth"] == 0:
            if _SESSION["patched"]:
                _patch(False)
                _SESSION["patched"] = False
            _TRACES.clear()


def _symbolic_call(layer, args, kwargs):
    """`layer.call(*args, **kwargs)` on KerasTensors, at inference, with the trace's
    patches in place."""
    kwargs = _call_kwargs(layer, kwargs, inference=True)
    _SESSION["depth"] += 1
    if not _SESSION["patched"]:
        _patch(True)
        _SESSION["patched"] = True
    try:
        return layer.call(*args, **kwargs)
    except Unsupported:
        raise
    except Exception as err:  # noqa: BLE001 (the user's code may raise anything)
        raise Unsupported(_why(layer, err)) from None
    finally:
        _SESSION["depth"] -= 1
        if _SESSION["depth"] == 0 and _SESSION["patched"]:
            _patch(False)
            _SESSION["patched"] = False


def _patch(on):
    """The trace's patches: random ops refused (outside `build`), variables left of
    tensors deferred,
    untraceable sublayers inlined, composite sublayers' output specs traced, functions
    substituted (`substitute`)."""
    modules = [m for m in (sys.modules.get(f"keras.src.backend.{b}.random") for b in
                           ("tensorflow", "jax", "torch", "numpy", "openvino"))
               if m is not None and hasattr(m, "draw_seed")]
    if on:
        _SAVED_SEEDS.update({m: m.draw_seed for m in modules})
        for m in modules:
            m.draw_seed = _random_guard(m.draw_seed)
    else:
        for m, fn in _SAVED_SEEDS.items():
            m.draw_seed = fn
        _SAVED_SEEDS.clear()
    for cls, name in _variable_dunders():
        _swap(on, cls, name, _defer)
    _swap(on, keras.layers.Layer, "__call__", _inline_untraceable)
    _swap(on, keras.layers.Layer, "compute_output_spec", _traced_specs)
    _swap(on, keras.layers.Layer, "_maybe_build", _building)
    _substitutes(on)


def _traced_specs(original):
    """While tracing, a sublayer that will be traced itself and has no
    `compute_output_shape` gets its output spec from a KerasTensor trace of its call,
    not from the backend's (a TensorFlow FuncGraph per call: 94% of MiT's export time)."""
    from keras.src import utils as keras_utils

    def spec(self, *args, **kwargs):
        if not keras_utils.is_default(self.compute_output_shape):
            outputs = _spec_from_shape(self, args, kwargs)
            return original(self, *args, **kwargs) if outputs is None else outputs
        if _SESSION["lowerable"](self) or isinstance(self, keras.Model):
            return original(self, *args, **kwargs)
        try:
            outputs, _ = _traced(self, args, kwargs)
        except Unsupported:
            outputs = _spec_with_symbol(self, args, kwargs)
            if outputs is None:
                return original(self, *args, **kwargs)  # Keras's own spec, or its own error
        return keras.tree.map_structure(
            lambda t: keras.KerasTensor(t.shape, t.dtype) if isinstance(t, keras.KerasTensor)
            else t, outputs)
    return spec


def _spec_with_symbol(layer, args, kwargs):
    """The output spec of a call that needs the batch as a number, on inputs whose batch
    is unknown: traced with BATCH_SYMBOL, its multiples unknown again (None when that
    fails too). Keras's own spec would build a TensorFlow FuncGraph per call (Swin: 0.7 s)."""
    def with_symbol(t):
        if isinstance(t, keras.KerasTensor) and t.shape and t.shape[0] is None:
            return keras.KerasTensor((BATCH_SYMBOL,) + tuple(t.shape[1:]), t.dtype)
        return t

    def unknown(t):
        if not isinstance(t, keras.KerasTensor):
            return t
        return keras.KerasTensor(tuple(None if d and d % BATCH_SYMBOL == 0 else d
                                       for d in t.shape), t.dtype)

    args, kwargs = keras.tree.map_structure(with_symbol, (args, kwargs))
    try:
        outputs, _ = _traced(layer, args, kwargs)
    except Unsupported:
        return None
    return keras.tree.map_structure(unknown, outputs)


_BACKEND_CODE = ("backend-specific code on a symbolic tensor (a tf./jax./torch. call): use "
                 "keras.ops")

# Where a traced `call` stops, the reason in a user's words, by what the error says.
_REASONS = (
    (("bool", "KerasTensor"), "Python control flow on tensor values (an `if` or `while` on "
                              "a tensor): use keras.ops.where / keras.ops.cond"),
    (("symbolic", "cannot be used as input"), _BACKEND_CODE),
    (("__array__",), "NumPy on a symbolic tensor: use keras.ops"),
    (("not KerasTensor",), _BACKEND_CODE),  # torch's C functions leave no frame
    (("__jax_array__",), _BACKEND_CODE),  # nor does JAX, which filters its own
)


def _why(layer, err):
    """`call` line and reason of a failed trace."""
    where = ""
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        if frame.f_locals.get("self") is layer:
            path = frame.f_code.co_filename
            code = linecache.getline(path, lineno).strip()
            where = f"{os.path.basename(path)}:{lineno} in {frame.f_code.co_name} (`{code}`)"
    text = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    reason = "its call can't be traced"
    frames = [f.f_code.co_filename.replace(os.sep, "/") for f, _ in
              traceback.walk_tb(err.__traceback__)]
    def backend(path):
        return any(f"/{pkg}/" in path for pkg in ("tensorflow", "torch", "jax", "jaxlib"))

    # a tf./torch./jax. function called from the model's own code, not through keras.ops
    backend_code = any(backend(path) and not backend(caller) and "/keras/" not in caller
                       for caller, path in zip(frames, frames[1:]))
    if isinstance(err, _RandomAtInference):
        reason = "a random op runs at inference (keras.random without a training check)"
    elif backend_code:
        reason = _BACKEND_CODE
    else:
        for words, said in _REASONS:
            if all(w in str(err) for w in words):
                reason = said
                break
    return f"tracing its call stopped at {where or 'an unknown line'}: {reason} ({text})"


def _node_counts(layer):
    """Node counts of `layer`'s sublayers, which the trace's calls add nodes to."""
    return [(sub, len(sub._inbound_nodes), len(sub._outbound_nodes))
            for sub in layer._flatten_layers(include_self=False)]


def _restore_node_counts(before):
    for sub, n_in, n_out in before:
        del sub._inbound_nodes[n_in:]
        del sub._outbound_nodes[n_out:]
