"""The result of an import's verification: the imported Keras model against onnxruntime
on the same inputs, tensor by tensor, by the export's rule (`ImportVerifyReport`, the
`verify` section of an import's `Report`)."""

import dataclasses
import json

from keras_convx.verification import rules as stats


@dataclasses.dataclass
class ImportVerifyReport:
    """The imported Keras model against onnxruntime on the same inputs, by the export's rule:
    the `verify` section of an import's `Report`.

    `outputs`: {ONNX output name: `stats.TensorError`}. `tensors`: [(node name, op type,
    ONNX tensor name, `stats.TensorError`)] for every tensor the Keras model holds, in graph
    order. `passed` is True when no output or tensor fails (NaN/Inf on either side fails)
    and every output is informative: a constant output proves nothing, and never passes.
    """

    outputs: dict
    tolerance: float
    batch: int
    tensors: list = dataclasses.field(default_factory=list)
    # a QDQ file: the quantization parameters it held (the import and the comparison are
    # of its float graph: weights dequantized, activation pairs removed)
    quantization: list = dataclasses.field(default_factory=list)
    # what a runtime raised instead of answering (the runtime, the input shape, the node
    # where known): a verification that could not run never passes
    error: str = ""
    # the sizes of the dynamic axes after the batch the model was compared at
    sizes: list = dataclasses.field(default_factory=list)
    # per graph input/output: what moved to channels-last (`model.import_layouts`)
    layouts: list = dataclasses.field(default_factory=list)
    # wall time of the verification
    seconds: float = 0.0

    @property
    def informative(self):
        return any(e.informative for e in self.outputs.values()) or \
            any(row[3].informative for row in self.tensors)

    @property
    def failed(self):
        """The failing tensors, in graph order (the first is where it broke)."""
        return [row for row in self.tensors if row[3].failed(self.tolerance)]

    @property
    def passed(self):
        """The export's rule: nothing fails, and every output is informative."""
        return (not self.error and bool(self.outputs)
                and all(e.informative for e in self.outputs.values()) and not self.failed
                and not any(e.failed(self.tolerance) for e in self.outputs.values()))

    @property
    def worst(self):
        return max((e.rel for e in self.outputs.values() if e.informative), default=0.0)

    def reason(self):
        """Why the report does not pass, in one line ("passed" when it does)."""
        if self.passed:
            return "passed"
        if self.error:
            return self.error
        if self.failed:
            node, op, _, e = self.failed[0]
            what = f"NaN/Inf ({e.nonfinite})" if e.nonfinite else f"rel {e.rel:.2e}"
            return (f"the imported model differs from onnxruntime beyond {self.tolerance:g} "
                    f"of the tensor scale; first difference at node {node!r} ({op}), {what}")
        bad = [n for n, e in self.outputs.items() if e.failed(self.tolerance)]
        if bad:
            return f"output {bad[0]} differs from onnxruntime beyond {self.tolerance:g}"
        return "an output is constant or zero: nothing proves it"

    def to_json(self):
        return json.dumps({
            "passed": self.passed, "reason": self.reason(), "tolerance": self.tolerance,
            "batch": self.batch, "rule": stats.TOLERANCE_RULE, "error": self.error,
            "sizes": self.sizes, "layouts": self.layouts,
            "quantization": self.quantization,
            "outputs": {n: dataclasses.asdict(e) for n, e in self.outputs.items()},
            "tensors": [{"node": n, "op": op, "tensor": t, **dataclasses.asdict(e)}
                        for n, op, t, e in self.tensors]}, indent=2, default=str)

    def summary(self):
        lines = [f"verification could not run: {self.error}"] if self.error else []
        if self.sizes:
            lines.append("dynamic axes compared at " + ", ".join(
                "x".join(str(d) for d in s) for s in self.sizes))
        for name, e in self.outputs.items():
            status = "FAIL" if e.failed(self.tolerance) else (
                "ok" if e.informative else "uninformative")
            lines.append(f"{name}: {status} (rel {e.rel:.2e}, shape {list(e.shape)})")
        if self.quantization:
            lines.append(f"a quantized graph (QDQ or dynamic): compared as float "
                         f"({len(self.quantization)} quantization parameter sets kept in the "
                         f"report)")
        moved = [f"{row['role']} {row['name']} {row['onnx_shape']} -> {row['keras_shape']}"
                 for row in self.layouts if row["moved"] and row["perm"][0] == 0]
        if moved:
            lines.append("moved to channels-last: " + "; ".join(moved)
                         + " (layouts='onnx' keeps the file's)")
        # time-major sequences: a Keras model's inputs and outputs are batch-first
        seqs = [f"{row['role']} {row['name']} {row['onnx_shape']} -> {row['keras_shape']}"
                for row in self.layouts if row["perm"] and row["perm"][0] != 0]
        if seqs:
            lines.append("time-major, made batch-first: " + "; ".join(seqs))
        compared = [r for r in self.tensors if r[3].informative]
        lines.append(f"{len(self.tensors)} tensors compared ({len(compared)} informative), "
                     f"{len(self.failed)} failing")
        if self.failed:
            node, op, name, e = self.failed[0]
            what = (f"NaN/Inf ({e.nonfinite})" if e.nonfinite else
                    f"rel {e.rel:.2e}, tolerance {self.tolerance:g}")
            lines.append(f"first difference at node {node!r} ({op}): {what}")
        elif not all(e.informative for e in self.outputs.values()):
            lines.append("an output is constant or zero: nothing proves it (an uninformative "
                         "tensor never passes)")
        return "\n".join(lines)
