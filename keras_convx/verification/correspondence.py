"""The correspondence between a Keras model's tensors and a graph's: one typed row per pair.

The exporter's builder makes the rows in memory as it lowers; verification and the INT8
stages read them there. JSON exists only in the exported file's metadata
(`keras_convx.tensors`), for a verification that starts from the file.
"""

import dataclasses
import json

KEY = "keras_convx.tensors"  # the metadata key the rows are stored under
STATUSES = ("live", "fused")
KINDS = ("output", "preactivation")


@dataclasses.dataclass
class Row:
    """Where one Keras tensor lives in the graph.

    Attributes:
        key: the Keras tensor, `operation:node_index:tensor_index` (`<outer>/<inner>`
            inside a traced layer or nested model).
        label: the operation's name, for reports.
        onnx: the graph tensor that holds its value.
        perm: the graph tensor's layout: `graph = np.transpose(keras, perm)`.
        status: `"live"` while a graph tensor holds the value, `"fused"` once a rewrite
            removed it (`into`: the operation it went into).
        kind: `"output"`, or `"preactivation"`: the input of a squashing activation
            (softmax, sigmoid) that the layer fused into its output (`activation`).
    """

    key: str
    label: str
    onnx: str
    perm: tuple
    status: str = "live"
    into: str = None
    kind: str = "output"
    activation: str = None

    def __post_init__(self):
        self.perm = tuple(self.perm)
        if self.status not in STATUSES:
            raise ValueError(f"tensor map: status must be one of {STATUSES}, got "
                             f"{self.status!r} ({self.key})")
        if self.kind not in KINDS:
            raise ValueError(f"tensor map: kind must be one of {KINDS}, got {self.kind!r} "
                             f"({self.key})")

    @property
    def live(self):
        return self.status == "live"

    @property
    def ref_key(self):
        """The key of Keras's value of this tensor in a verification reference."""
        return ("pre" if self.kind == "preactivation" else "out", self.key)

    def to_dict(self):
        return {**dataclasses.asdict(self), "perm": list(self.perm)}


def dumps(rows):
    """The rows as the file's metadata holds them."""
    return json.dumps([row.to_dict() for row in rows])


def loads(text):
    """Rows from the file's metadata (unknown keys of later versions are ignored)."""
    fields = {f.name for f in dataclasses.fields(Row)}
    return [Row(**{k: v for k, v in item.items() if k in fields}) for item in json.loads(text)]
