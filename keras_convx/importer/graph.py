"""The graph the front end hands the passes and the graph walk: ONNX nodes with their
attributes as Python values, constants, inferred shapes, and which folded values depend
on a dynamic batch size."""

import dataclasses

import numpy as np

# Per entry of a folded value: independent of the batch size, exactly the batch size, or
# computed from it (see `Graph.batch_marks`).
STATIC, BATCH, COMPUTED = 0, 1, 2


@dataclasses.dataclass
class Node:
    """One ONNX node (or a group fused by a pass): attributes as Python values."""

    name: str
    op_type: str
    domain: str
    inputs: list
    outputs: list
    attrs: dict
    fused: list = dataclasses.field(default_factory=list)  # names of nodes folded in
    extra: dict = dataclasses.field(default_factory=dict)  # what a fusion pass hands over

    def label(self):
        return f"node {self.name!r} ({self.op_type})"


@dataclasses.dataclass
class Graph:
    """The checked, folded graph: what the passes rewrite and the graph walk converts."""

    nodes: list
    constants: dict  # tensor name -> np.ndarray (initializers and folded values)
    inputs: list  # (name, shape with None for a dynamic batch, dtype)
    outputs: list
    opset: dict  # domain -> version
    shapes: dict  # tensor name -> inferred shape (None where unknown)
    path: str = None
    # folded values computed from a dynamic batch size (Shape holds 0 for it): tensor ->
    # int array of its shape, per entry STATIC, BATCH (exactly the batch size) or COMPUTED
    # (a function of it). Only entries marked BATCH in first place are accepted, where a
    # conversion can keep the batch symbolic (a Reshape's target, an Expand's shape).
    batch_marks: dict = dataclasses.field(default_factory=dict)
    # the layouts keras_convx's exporter moved each output to (its `keras_convx.io`
    # metadata): a file of ours imports back to the Keras model's own signature
    exported_output_perms: list = None
    # QuantizeLinear/DequantizeLinear of the file (a QDQ graph): the import is float
    # (weights dequantized exactly, activation pairs removed); their parameters are kept
    quantization: list = dataclasses.field(default_factory=list)

    def batch_dependent(self, name):
        """Whether any entry of the folded value `name` depends on the batch size."""
        marks = self.batch_marks.get(name)
        return marks is not None and bool(np.any(marks))

    def batch_first_only(self, name):
        """Whether `name`'s only batch-dependent entry is its first, exactly the batch."""
        marks = np.asarray(self.batch_marks.get(name, np.zeros(1, np.int8))).reshape(-1)
        return marks.size > 0 and marks[0] in (STATIC, BATCH) and not np.any(marks[1:])

    def consumers(self, name):
        return [n for n in self.nodes if name in n.inputs]
