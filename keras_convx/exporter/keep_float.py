"""Which nodes of an INT8 export stay in float32 (`keep_float`): the names checked before
anything is quantized, each Keras layer or ONNX node name mapped to the nodes of the
preprocessed graph that compute it, and the note on what `keep_float="auto"` tried."""

import difflib

from keras_convx.interop.names import keras_layer_name
from keras_convx.verification.quantized import LAYER_DROP_DB


def check_keep_float(keep_float, float_model, entries):
    """Validates `keep_float` before anything is quantized: "auto", None, or names that are
    Keras layers of the model (tensor-map labels) or ONNX nodes of the float graph (or
    of the ONNX file an imported model came from). Raises ValueError naming the unknown
    ones and their close matches."""
    if keep_float is None or keep_float == "auto":
        return
    if isinstance(keep_float, (str, bytes)) or not all(isinstance(n, str) for n in keep_float):
        raise ValueError(f"export: keep_float must be 'auto' or a list of Keras layer or ONNX "
                         f"node names. Received: keep_float={keep_float!r}")
    labels = {e.label for e in entries}
    nodes = {n.name for n in float_model.graph.node if n.name}
    unknown = [n for n in keep_float
               if n not in labels and n not in nodes and keras_layer_name(n) not in labels]
    if unknown:
        known = sorted(labels | nodes)
        hints = "; ".join(
            f"close matches for {n!r}: {difflib.get_close_matches(n, known, 4, 0.6)}"
            if difflib.get_close_matches(n, known, 1, 0.6) else f"no close match for {n!r}"
            for n in unknown)
        raise ValueError(f"export: keep_float names {unknown}, which are neither Keras layers "
                         f"nor ONNX nodes of the graph ({hints}; layers: "
                         f"{sorted(labels)[:12]}{'...' if len(labels) > 12 else ''})")


def keep_float_nodes(pre_model, float_model, entries, names):
    """The nodes of the preprocessed graph `pre_model` to keep in float for `names`
    (`check_keep_float`). A Keras layer answers for every node lowered from it: the nodes
    from its output back to the previous mapped tensors, the nodes named after it, and,
    where a rewrite folded it into another layer's node (a Conv into the BatchNormalization
    after it, a ZeroPadding into its Conv), that node. An ONNX node name answers for that
    node, or what quant_pre_process fused it into."""
    by_label = {}
    for e in entries:
        by_label.setdefault(e.label, []).append(e)
    producer = {o: n for n in pre_model.graph.node for o in n.output}
    pre_names = {n.name for n in pre_model.graph.node}
    boundary = {e.onnx for e in entries if e.live and e.onnx in producer}

    def layer(label, seen):
        if label in seen:
            return set()
        seen.add(label)
        out = {n.name for n in pre_model.graph.node if n.name.startswith(label + "/")}
        for e in by_label.get(label, []):
            if not e.live:  # folded: its node now answers to another layer
                if e.into:
                    out |= layer(e.into, seen)
                continue
            stack = [e.onnx]
            while stack:
                node = producer.get(stack.pop())
                if node is None or node.name in out:
                    continue
                out.add(node.name)
                stack.extend(i for i in node.input if i not in boundary)
        return out

    float_nodes = {n.name: n for n in float_model.graph.node if n.name}
    found = set()
    for name in names:
        mine = set()
        if name in by_label or keras_layer_name(name) in by_label:
            mine |= layer(name if name in by_label else keras_layer_name(name), set())
        if name in float_nodes:
            if name in pre_names:
                mine.add(name)
            else:  # fused by quant_pre_process: the node that now writes its outputs
                mine |= {producer[o].name for o in float_nodes[name].output if o in producer}
                if not mine and "/" in name:
                    mine |= layer(name.rsplit("/", 1)[0], set())
        if not mine:
            raise ValueError(f"export: keep_float names {name!r}, which computes no node of "
                             f"the graph being quantized (optimized away)")
        found |= mine
    return sorted(found)


def auto_note(kept, first, report, stop):
    """What `keep_float="auto"` tried and why the rule still fails (`QuantReport.auto`)."""
    failing = report.failing
    if failing is None:
        why = "; ".join(report.errors) or "no check passed"
    elif failing.role == "internal":
        why = (f"{failing.layer} fails with {', '.join(kept)} in float32"
               if kept else f"{failing.layer} fails")
    else:  # no layer lost enough itself to blame: noise grown over many layers
        why = (f"the outputs fail with no layer to blame (each loses less than "
               f"{LAYER_DROP_DB:g} dB itself): noise grown over many layers, which float32 "
               f"for a few of them does not remove")
    tried = (f"kept {', '.join(kept)} in float32, worst own error first"
             if kept else "kept nothing in float32")
    before = f"; before: {first}" if kept else ""
    return f"keep_float='auto' {tried}, then stopped ({stop}){before}; still failing: {why}"
