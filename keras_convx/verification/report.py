"""What verification found: one row per tensor compared, and the report of a run."""

import dataclasses
import json

from keras_convx.verification.rules import TOLERANCE_RULE, Statistics


class ExportError(RuntimeError):
    """Export or verification could not be carried out; the message says which step and why."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class VerificationFailed(Exception):
    """A Keras model and its ONNX graph disagree, in either direction: the base of
    `VerificationError` (export) and `ImportVerificationError` (import), so one `except`
    catches a failed verification wherever it ran; `report` says what differed."""

    report = None


class VerificationError(ExportError, VerificationFailed):
    """The ONNX graph's tensors differ from the Keras model's beyond tolerance."""


@dataclasses.dataclass(kw_only=True)
class TensorCheck(Statistics):
    """One tensor compared: a graph output, an internal Keras tensor, or a pre-activation.

    `status` is `"pass"`, `"FAIL"`, `"uninformative"` (a constant reference proves
    nothing), `"fused"` (the graph has no tensor for it: `into` names the layer that
    absorbed it; not compared) or `"amplified"`: beyond tolerance, but Keras itself moves
    this tensor by `sensitivity` when its inputs move by one float32 rounding, and every
    layer of the graph matches Keras on the same inputs (the model amplifies rounding;
    see `VerifyReport.local_worst`).
    """

    tensor: str
    role: str
    provider: str
    level: str
    batch: int
    shape: tuple
    tolerance: float
    status: str
    into: str = None
    key: str = None
    layer: str = None  # the Keras layer or operation the tensor belongs to
    run: tuple = None  # graph outputs: (which run of inputs, which output)
    sensitivity: float = None  # Keras's own move under a one-ulp input change, error/scale

    @property
    def passed(self):
        return self.status != "FAIL"

    @property
    def required_tolerance(self):
        """The tolerance this row would have passed at (None: none would: NaN/Inf, a shape
        mismatch, or a reference that proves nothing)."""
        if self.nonfinite or self.actual_shape is not None or self.status in (
                "uninformative", "fused"):
            return None
        return self.rel


@dataclasses.dataclass
class VerifyReport:
    """What `verify_onnx` ran and measured.

    `checks`: graph outputs at the deployment level, every run. `tensors`: every Keras
    tensor of the tensor map (outputs of layers and `keras.ops` nodes, pre-activations),
    at the inspection level, one run. `passed` is True when nothing failed and at least
    one informative tensor was compared.
    """

    path: str
    opset: int
    node_count: int
    file_size: int
    providers: list
    level: str = "all"
    rule: str = TOLERANCE_RULE
    checks: list = dataclasses.field(default_factory=list)
    tensors: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    ort_problem: dict = None
    level_spread: float = None  # deployed level vs unoptimised graph, outputs, error/scale
    # worst error/scale of any layer applied by Keras to the graph's values of its inputs
    # (measured when tensors differ beyond tolerance; None otherwise)
    local_worst: float = None
    seconds: float = 0.0

    @property
    def informative(self):
        return [c for c in self.checks + self.tensors
                if c.status in ("pass", "FAIL", "amplified")]

    @property
    def constant_outputs(self):
        """Graph outputs constant (or zero) on every run, with nothing else proving them: a
        softmax/sigmoid output that is flat at random init is proven by its layer's tensor
        before the activation, compared too (role "preactivation")."""
        seen = {}
        for c in self.checks:
            if c.role == "output":
                seen[c.tensor] = seen.get(c.tensor, False) or c.status != "uninformative"
        proven = {c.layer for c in self.tensors
                  if c.role == "preactivation" and c.status in ("pass", "amplified")}
        return [name for name, informative in seen.items()
                if not informative and name not in proven]

    @property
    def passed(self):
        """Nothing failed, and every graph output was informative on some run: a constant
        or zero reference never passes (NaN/Inf always fail)."""
        return (not self.errors and bool(self.informative) and not self.constant_outputs
                and all(c.passed for c in self.checks + self.tensors))

    @property
    def required_tolerance(self):
        """The smallest tolerance that would have passed: the worst error/scale of any
        informative tensor compared; None when none would (NaN/Inf, a shape mismatch, a
        constant output, nothing informative, or an error)."""
        compared = [c for c in self.checks + self.tensors if c.status in ("pass", "FAIL")]
        if self.errors or not compared or self.constant_outputs or any(
                c.nonfinite or c.actual_shape is not None for c in compared):
            return None
        return max(c.rel for c in compared)

    @property
    def diagnosis(self):
        """The failing internal tensors in graph order (the first is where it broke);
        layers that differ from Keras on the same inputs (role "local") come first."""
        failed = [c for c in self.tensors if c.status == "FAIL"]
        return [c for c in failed if c.role == "local"] + \
            [c for c in failed if c.role != "local"]

    def summary(self):
        """One line: what failed first, by how much relative to its scale, where."""
        if self.errors:
            return self.errors[0]
        failed = self.diagnosis or [c for c in self.checks if c.status == "FAIL"]
        if failed:
            c = failed[0]
            where = "first diverging layer" if c.role != "output" else "output"
            if c.nonfinite and c.role != "output":
                where = "first tensor with NaN/Inf"
            if c.actual_shape is not None:
                what = f"shape {c.actual_shape} where Keras has {tuple(c.shape)}"
            elif c.nonfinite:
                what = {"keras": "NaN/Inf in Keras's own tensor: the model itself computes "
                                 "them on these inputs",
                        "onnx": "NaN/Inf in onnxruntime's tensor where Keras is finite",
                        "both": "NaN/Inf in both Keras's and onnxruntime's tensors: the model "
                                "itself computes them on these inputs"}[c.nonfinite]
            else:
                what = f"error {c.rel:.3g} x its scale {c.scale:.3g}, tolerance {c.tolerance:g}"
            return f"{where}: {c.tensor} ({what}; {c.provider}, ORT level {c.level})"
        if not self.informative:
            return "nothing informative to compare: every reference tensor is constant or zero"
        if self.constant_outputs:
            return (f"output {self.constant_outputs[0]} is constant or zero on every input: "
                    f"nothing proves it (an uninformative tensor never passes; verify with "
                    f"samples that move it)")
        return "passed"

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["passed"] = self.passed
        out["required_tolerance"] = self.required_tolerance  # a property: asdict skips it
        for row, check in zip(out["checks"] + out["tensors"], self.checks + self.tensors):
            row["required_tolerance"] = check.required_tolerance
        out["summary"] = self.summary()
        return out

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, default=str)
