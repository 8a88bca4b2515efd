"""`Signature`: what a Keras model and its ONNX graph agree on at their boundary, per input
and output. The exporter makes it, stores it in the file (`keras_convx.io`), and verification,
calibration and the metadata read it."""

import dataclasses
import json

KEY = "keras_convx.io"  # the metadata entry that holds it in an exported file


@dataclasses.dataclass
class Signature:
    """Per graph input and output: how the graph lays out and types what Keras holds.

    `input_perms` / `output_perms`: per input/output, the graph's axis order as a
    permutation of Keras's (None: the same order). `input_dtypes`: per input, `"float32"`
    or `"uint8"` (None: all float32). `input_shapes`: per input, the Keras shape the
    export fixed (batch included; None: the model's own). `static_batch`: the graph's
    fixed batch size, or None when the batch is dynamic.
    """

    input_perms: list = None
    output_perms: list = None
    input_dtypes: list = None
    input_shapes: list = None
    static_batch: int = None

    @classmethod
    def of(cls, value):
        """A `Signature` from one, from its dict form (a file's `keras_convx.io`), or an
        empty one from None."""
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        if isinstance(value, dict):
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in value.items() if k in names})
        raise TypeError(f"Signature: expected a Signature, its dict form or None, got "
                        f"{type(value).__name__}")

    @classmethod
    def read(cls, onnx_model):
        """The signature stored in an exported ONNX model (empty when it has none)."""
        props = {p.key: p.value for p in onnx_model.metadata_props}
        return cls.of(json.loads(props.get(KEY, "{}")))

    def to_json(self):
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items()
                           if v is not None})
