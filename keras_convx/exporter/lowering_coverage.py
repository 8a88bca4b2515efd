"""What native export meets in a model: every class its trace reaches, and how each is
handled (lowered by class, traced through its `call`, or missing)."""

import dataclasses

from keras_convx.exporter import tensor_map, trace


def unsupported_layers(model):
    """(name, kind and class path, reason) of each layer or `keras.ops` node the native
    exporter can't lower, all at once: no lowering and no traceable `call`, or a lowering
    that is missing inside a traced `call` (its path names the composite layer)."""
    return list(tensor_map.flat_graph(model).problems)


@dataclasses.dataclass
class CoverageRow:
    """One class the native exporter meets in a model: `kind` (`layer`/`operation` and
    its class path), `how` (`"lowering"`: lowered by class; `"traced"`: its `call` was
    traced into the rows below it; `"missing"`: neither) and how many times."""

    kind: str
    how: str
    count: int
    reason: str = ""


def coverage(model, batch_size=None):
    """What native export meets in `model`: every layer and `keras.ops` class its trace
    reaches (composite layers and their insides, nested models), and whether each is
    lowered by class, traced through its `call`, or missing (with the reason).

    Args:
        model: a Functional or Sequential model.
        batch_size: the static batch of the export (None: dynamic).

    Returns:
        A list of `CoverageRow`, sorted by `how` then class path.
    """
    flat = tensor_map.flat_graph(model, batch_size)
    counts, reasons = {}, {}
    for _, kind, why in flat.problems:
        reasons.setdefault(kind, why)
    for fnode in flat.nodes:
        if fnode.operation is not None:
            kind = trace.describe(fnode.operation)
            how = "missing" if kind in reasons else "lowering"
            counts[kind, how] = counts.get((kind, how), 0) + 1
    for _, op in flat.traced:
        kind = trace.describe(op)
        counts[kind, "traced"] = counts.get((kind, "traced"), 0) + 1
    order = {"missing": 0, "traced": 1, "lowering": 2}
    return sorted((CoverageRow(kind, how, n, reasons.get(kind, "") if how == "missing" else "")
                   for (kind, how), n in counts.items()),
                  key=lambda r: (order[r.how], r.kind))
