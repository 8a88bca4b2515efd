"""A model as one flat graph of operations that have lowerings: composite layers traced
through their `call`, nested models inlined.

Keras builds a graph by itself when a layer's `call` runs on KerasTensors: sublayer
calls become layer nodes and `keras.ops` calls become operation nodes, and variables
read in `call` (`x * self.gamma`) stay as arguments of those nodes. So a layer with no
lowering is called once on fresh symbolic inputs (training=False: Dropout, DropPath and
stochastic depth off, BatchNormalization on its moving statistics), and its nodes take
its place, recursively. The nodes the trace adds to the sublayers are removed again:
tracing leaves the model as it was.

Every tensor of the flat graph has a key that names it in the tensor map: the Functional
graph's own `operation:node_index:tensor_index` at the top, and below a composite node
`<its key>/<inner key>`, where inside a traced `call` the inner key is the operation's
position (`#3:0`: `keras.ops` nodes are named by a global counter, positions are the
same in every trace) and inside a nested model it is that model's own key.
"""

import contextlib
import dataclasses
import functools
import inspect
import linecache
import os
import sys
import traceback

import keras

from keras_convx import layers as kcl
from keras_convx.exporter.graph import Unsupported


@dataclasses.dataclass
class FlatNode:
    """One operation of the flat graph (`operation` None: an alias that passes tensors
    into or out of an inlined graph). `keys`/`label` name its output tensors."""

    operation: object
    node: object  # the Keras Node (its arguments and output KerasTensors)
    keys: list
    label: str
    aliases: list = None  # [(to KerasTensor, from KerasTensor)] for alias nodes

    @property
    def outputs(self):
        return self.node.outputs

    @property
    def input_tensors(self):
        return self.node.input_tensors


@dataclasses.dataclass
class FlatGraph:
    """`nodes` in execution order; `inputs`/`outputs` are the model's KerasTensors."""

    inputs: list
    outputs: list
    nodes: list
    problems: list  # (name, kind and class path, reason) of what has no lowering
    traced: list  # (label, operation) of the layers traced through `call`
    # BATCH_SYMBOL where a `call` computing with the batch size as a number was traced
    # with it under a dynamic batch (the lowering makes its multiples dynamic), else None
    batch_symbol: int = None

    def by_key(self):
        """{key: (KerasTensor, FlatNode)} for every tensor an operation writes."""
        found = {}
        for n in self.nodes:
            if n.operation is not None:
                for key, kt in zip(n.keys, n.outputs):
                    found[key] = (kt, n)
        return found


def walk(model):
    """The nodes of a Functional graph in execution order (inputs left out)."""
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def flatten(model, lowerable, kind, batch=None):
    """The flat graph of a Functional model.

    Args:
        model: a Functional model (see `tensor_map.functional`).
        lowerable: `fn(operation) -> bool`, whether the exporter lowers it by class.
        kind: `fn(operation) -> str` describing an operation for problem reports.
        batch: the static batch size of the export, or None (dynamic): a `call` that
            computes with the batch size as a number is traced with it when given.
    """
    nodes, problems, traced = [], [], []
    _SESSION["lowerable"] = lowerable
    with _session():
        context = _Context(lowerable, kind, nodes, problems, traced, batch)
        _inline(model, "", "", context)
    symbol = BATCH_SYMBOL if context.symbolic_batch else None
    return FlatGraph(list(model.inputs), list(model.outputs), nodes, problems, traced, symbol)


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


@dataclasses.dataclass
class _Context:
    lowerable: object
    kind: object
    nodes: list
    problems: list
    traced: list
    batch: int = None
    symbolic_batch: bool = False  # a call was traced with BATCH_SYMBOL as its batch


def _inline(graph, prefix, label, c, traced_call=False):
    for position, node in enumerate(walk(graph)):
        op = node.operation
        if traced_call or node not in op._inbound_nodes:
            base = f"{prefix}#{position}"
        else:
            base = f"{prefix}{op.name}:{op._inbound_nodes.index(node)}"
        keys = [f"{base}:{i}" for i in range(len(node.outputs))]
        name = f"{label}{op.name}"
        inner = _functional_of(op) if isinstance(op, keras.Model) else None
        if inner is not None and _same_shapes(node, inner):
            _alias(c.nodes, _call_inputs(node, inner), inner.inputs, name)
            _inline(inner, base + "/", name + "/", c)
            _alias(c.nodes, inner.outputs, node.outputs, name, forward=False)
        elif c.lowerable(op) or not isinstance(op, keras.layers.Layer):
            if not c.lowerable(op):
                c.problems.append((name, c.kind(op), "no lowering registered"))
            c.nodes.append(FlatNode(op, node, keys, name))
        else:
            try:
                fn = _trace_with_batch(op, node, c)
            except Unsupported as err:
                c.problems.append((name, c.kind(op), str(err)))
                c.nodes.append(FlatNode(op, node, keys, name))  # never lowered: problems stop it
                continue
            c.traced.append((name, op))
            _alias(c.nodes, node.input_tensors, fn.inputs, name)
            _inline(fn, base + "/", name + "/", c, traced_call=True)
            _alias(c.nodes, fn.outputs, node.outputs, name, forward=False)


def _same_shapes(node, model):
    """Whether a nested model's own inputs are as specific as the tensors it is called on
    (a backbone built for any image size, called on 64x64, is traced at 64x64 instead)."""
    if not hasattr(model, "_nodes_by_depth"):
        return False
    outer = [tuple(t.shape) for t in _call_inputs(node, model)]
    return outer == [tuple(t.shape) for t in model.inputs]


# The batch size a `call` that computes with the batch as a number (`ops.tile(token,
# (batch, 1, 1))`, reshapes to batch * heads) is traced with under a dynamic batch: a prime
# no real size is a multiple of, so the lowering can tell its multiples in the graph's
# constants and compute them from the input's batch instead (`passes.dynamic_batch`).
BATCH_SYMBOL = 9973


def _trace_with_batch(layer, node, c):
    """`trace_call` with the export's static batch; under a dynamic batch, with the batch
    unknown, else with BATCH_SYMBOL standing for it."""
    if c.batch is not None:
        return trace_call(layer, node, c.batch)
    if any(t.shape and t.shape[0] == BATCH_SYMBOL for t in node.input_tensors):
        return trace_call(layer, node)  # inside a call traced with the symbol already
    try:
        return trace_call(layer, node)
    except Unsupported as err:
        try:
            fn = trace_call(layer, node, BATCH_SYMBOL)
        except Unsupported:
            raise err from None
        c.symbolic_batch = True
        return fn


class _AliasNode:
    def __init__(self, outputs, input_tensors):
        self.outputs, self.input_tensors = outputs, input_tensors


def _alias(nodes, sources, targets, label, forward=True):
    sources, targets = list(sources), list(targets)
    if len(sources) != len(targets):
        raise Unsupported(f"{label}: {len(sources)} tensors for {len(targets)} "
                          f"{'inputs' if forward else 'outputs'}")
    nodes.append(FlatNode(None, _AliasNode(targets, sources), [], label,
                          aliases=list(zip(targets, sources))))


def _functional_of(model):
    """A nested model's Functional graph: a built Sequential's own, a Functional model
    itself; a subclassed model (or an unbuilt Sequential) is traced through its `call`."""
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        return model if functional is None else functional
    return model


def _call_inputs(node, model):
    """The outer tensors fed to a nested model's inputs, in `model.inputs` order."""
    args = node.arguments.args
    first = args[0] if args else None
    if isinstance(first, dict):
        names = [kt.name for kt in model.inputs]
        struct = getattr(model, "_inputs_struct", None)
        if isinstance(struct, dict):
            names = list(keras.tree.flatten(
                {k: k for k in struct}))  # the model's own order of its dict inputs
        return [first[k] for k in names]
    return list(node.input_tensors)


def describe(op):
    """`layer keras.layers.Add` or `operation keras.src.ops.numpy.Add`: the same class name
    means different things for a layer and a `keras.ops` node in a Functional graph."""
    cls = type(op)
    path = f"{cls.__module__}.{cls.__qualname__}"
    for public, mod in (("keras.layers", keras.layers), ("keras_convx", kcl)):
        if getattr(mod, cls.__name__, None) is cls:
            path = f"{public}.{cls.__name__}"
            break
    return f"{'layer' if isinstance(op, keras.layers.Layer) else 'operation'} {path}"


def run(flat, arrays, forced=None):
    """Runs the flat graph eagerly, operation by operation (training=False).

    `forced`: {id(KerasTensor): value} used downstream instead of the computed value.
    Returns ({id(KerasTensor): value used downstream}, {id(KerasTensor): value computed}).
    """
    forced = forced or {}
    values = {id(kt): a for kt, a in zip(flat.inputs, arrays)}
    local = {}
    for fnode in flat.nodes:
        if fnode.operation is None:
            for to, source in fnode.aliases:
                values[id(to)] = values[id(source)]
            continue
        args, kwargs = fnode.node.arguments.fill_in(values)
        if getattr(fnode.operation, "_call_has_training_arg", False):
            kwargs["training"] = False
        if flat.batch_symbol is not None:  # traced with it: the batch of `arrays` instead
            op = fnode.operation
            if not isinstance(op, keras.layers.Layer):  # layers keep no batch in their config
                op = rebatched(op, int(arrays[0].shape[0]))
            args, kwargs = rebatched((args, kwargs), int(arrays[0].shape[0]))
            fnode = dataclasses.replace(fnode, operation=op)
        outs = keras.tree.flatten(_call(fnode, args, kwargs))
        for kt, y in zip(fnode.outputs, outs):
            local[id(kt)] = y
            values[id(kt)] = forced.get(id(kt), y)
    return values, local


def rebatched(value, batch):
    """`value` with each multiple of BATCH_SYMBOL among its Python ints (an operation's
    attributes, its non-tensor arguments) made that multiple of `batch`, and constants
    repeated along the symbol cut to `batch` (`passes.dynamic_batch` checks they are
    repetitions): an operation traced with the symbol, run on `batch` samples."""
    def leaf(v):
        if isinstance(v, int):
            return ints(v)
        shape = tuple(getattr(v, "shape", None) or ())
        if not isinstance(v, keras.KerasTensor) and shape and shape[0] and \
                int(shape[0]) % BATCH_SYMBOL == 0 and not isinstance(v, keras.Variable):
            return v[:int(shape[0]) // BATCH_SYMBOL * batch]
        return v

    def ints(v):
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, (tuple, list)):
                return type(v)(ints(e) for e in v)
            return v
        return v // BATCH_SYMBOL * batch if v and v % BATCH_SYMBOL == 0 else v

    if isinstance(value, keras.Operation):
        import copy

        changed = {k: ints(v) for k, v in vars(value).items()
                   if isinstance(v, (int, tuple, list)) and not k.startswith("_inbound")
                   and not k.startswith("_outbound")}
        copied = copy.copy(value)
        for k, v in changed.items():
            if v != getattr(value, k):
                setattr(copied, k, v)
        return copied
    return keras.tree.map_structure(leaf, value)


def _call(fnode, args, kwargs):
    """Runs one operation of the flat graph; a reshape whose target a trace read from a
    symbolic shape (None: the batch) takes the batch from its input."""
    from keras.src.ops.numpy import Reshape

    op = fnode.operation
    if isinstance(op, Reshape) and None in tuple(op.newshape):
        x = args[0]
        shape = list(op.newshape)
        if shape[0] is None and shape.count(None) + shape.count(-1) > 1:
            shape[0] = int(x.shape[0])
        return keras.ops.reshape(x, [-1 if d is None else d for d in shape])
    return op(*args, **kwargs)


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


class _RandomAtInference(Exception):
    pass


def _random_guard(draw_seed):
    """A backend's `draw_seed` that refuses random ops in a traced `call`, and lets
    through a sublayer's `build` the trace runs (a subclassed model exported before its
    first call: its initializers draw seeds)."""
    def guarded(seed=None):
        if _SESSION["building"]:
            return draw_seed(seed)
        raise _RandomAtInference("a random op runs at inference")
    return guarded


def _building(original):
    def maybe_build(self, *args, **kwargs):
        _SESSION["building"] += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _SESSION["building"] -= 1
    return maybe_build


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


@functools.lru_cache(maxsize=1024)
def _parameters(function):
    """The parameters of a `call` (by its function: every instance of a class shares it)."""
    params = inspect.signature(function).parameters
    return {k: v for k, v in params.items() if k != "self"} if "self" in params else params


def _call_kwargs(layer, kwargs, inference=False):
    """`kwargs` as `layer.call` takes them (as Layer.__call__ passes them): `training` and
    `mask` only where its signature has them; `training=False` for `inference`."""
    params = _parameters(getattr(layer.call, "__func__", layer.call))
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kwargs = dict(kwargs)
    if inference and ("training" in params or (
            takes_any and getattr(layer, "_call_has_training_arg", False))):
        kwargs["training"] = False
    for name in ("training", "mask"):
        if name in kwargs and name not in params and not takes_any:
            del kwargs[name]
    return kwargs


# A flatten (or a lone trace) is a session: the trace's patches are installed on its
# first trace and removed when it ends; nested traces share them.
_SESSION = {"depth": 0, "patched": False, "building": 0,
            "lowerable": lambda op: False}  # `flatten`'s: which sublayers are lowered by class


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


_SAVED_SEEDS = {}
_SWAPPED = {}


def _swap(on, cls, name, wrap):
    """Replaces `cls.name` by `wrap(original)`, or puts the original back."""
    if on:
        _SWAPPED[cls, name] = cls.__dict__[name]
        setattr(cls, name, wrap(cls.__dict__[name]))
    else:
        setattr(cls, name, _SWAPPED.pop((cls, name)))
SUBSTITUTES = {}  # (module name, attribute) -> replacement, while tracing
_SAVED_SUBSTITUTES = {}


def substitute(module, name, replacement):
    """While tracing, `module.name` is `replacement`: the way through a function whose
    code is backend-specific (a `tf.`/`torch.`/`jax.` call), replaced by one written with
    `keras.ops` or layers that have lowerings. Outside tracing nothing changes, and the
    model's own outputs stay the reference verification compares with.

    Args:
        module: the name of the module whose global the layer's `call` reads (where the
            function is used, not where it is defined).
        name: the attribute.
        replacement: a function with the same signature.
    """
    SUBSTITUTES[module, name] = replacement


def _substitutes(on):
    if on:
        for (module, name), replacement in SUBSTITUTES.items():
            loaded = sys.modules.get(module)
            if loaded is not None and hasattr(loaded, name):
                _SAVED_SUBSTITUTES[module, name] = getattr(loaded, name)
                setattr(loaded, name, replacement)
    else:
        for (module, name), original in _SAVED_SUBSTITUTES.items():
            setattr(sys.modules[module], name, original)
        _SAVED_SUBSTITUTES.clear()


def _spec_from_shape(layer, args, kwargs):
    """Layer.compute_output_spec for a call on one tensor (or one list of them), straight
    from `compute_output_shape` (Keras's CallSpec checks each argument against
    TensorFlow's tensor protocols, which Python 3.11 doesn't cache); None otherwise."""
    from keras.src import tree

    if len(args) != 1 or any(k not in ("training", "mask") for k in kwargs):
        return None
    x = args[0]
    if isinstance(x, keras.KerasTensor):
        shape = layer.compute_output_shape(tuple(x.shape))
    elif isinstance(x, (list, tuple)) and x and all(isinstance(t, keras.KerasTensor) for t in x):
        shape = layer.compute_output_shape([tuple(t.shape) for t in x])
    else:
        return None
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (int, type(None))):
        return keras.KerasTensor(tuple(shape), dtype=layer.compute_dtype)
    return tree.map_shape_structure(lambda s: keras.KerasTensor(s, dtype=layer.compute_dtype),
                                    shape)


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


_BINARY = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul")
_DUNDERS = [f"__{p}{op}__" for op in _BINARY for p in ("", "r")] + \
    [f"__{op}__" for op in ("lt", "le", "gt", "ge")]


def _defer(method):
    def dunder(self, other):
        if isinstance(other, keras.KerasTensor):
            return NotImplemented  # Python then asks the KerasTensor: a graph node
        return method(self, other)
    return dunder


def _variable_dunders():
    """(class, name) of the arithmetic methods of Keras's Variable classes (the backends'
    subclasses may define their own): while tracing they defer to a KerasTensor operand,
    so `self.scale * x` makes an operation node with the variable as a constant argument,
    as `x * self.scale` does, where Keras's Variable would hand the symbolic tensor to the
    backend."""
    from keras.src.backend.common.variables import Variable

    classes, todo = [], [Variable]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    return [(cls, name) for cls in classes for name in _DUNDERS if name in cls.__dict__]


def _inline_untraceable(original):
    """While tracing, a sublayer Keras can't record as a node runs its `call` inline: its
    operations join the trace. (It returns None or () beside its tensors, or its output
    spec can't be inferred symbolically: JAX turns its int arguments into tracers.)"""
    from keras.src.ops.node import Node

    def call(self, *args, **kwargs):
        if not self.built or not any(isinstance(t, keras.KerasTensor)
                                     for t in keras.tree.flatten((args, kwargs))):
            return original(self, *args, **kwargs)
        kwargs = _call_kwargs(self, kwargs)
        try:
            # what Layer.__call__ does symbolically, without its eager-call machinery
            # (on TensorFlow, its argument checks cost more than the whole export)
            outputs = self.compute_output_spec(*args, **kwargs)
            Node(operation=self, call_args=args, call_kwargs=kwargs, outputs=outputs)
            return outputs
        except Exception:  # noqa: BLE001 (inline, and let its own error speak if it fails)
            pass
        return self.call(*args, **_call_kwargs(self, kwargs, inference=True))
    return call


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
