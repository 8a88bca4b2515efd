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

A layer's `call` is traced by `trace_call` (with the patches of `trace_patches`); this
module builds and runs the flat graph.
"""

import dataclasses

import keras

from keras_convx import layers as kcl
from keras_convx.exporter.graph import Unsupported
from keras_convx.exporter.trace_call import BATCH_SYMBOL, _session, trace_call
from keras_convx.exporter.trace_patches import _SESSION, SUBSTITUTES, substitute  # noqa: F401


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
