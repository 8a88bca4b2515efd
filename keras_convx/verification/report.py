"""What verification found: one row per tensor compared, the comparison's section, and
`Report`, the one report type of every direction (export, import, verify, INT8)."""

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


DIRECTIONS = ("export", "import", "verify")


@dataclasses.dataclass
class Report:
    """What one export, import or verification did and found: the one report type.

    `export_onnx` returns it, `verify_onnx` returns it, `import_onnx` puts it on
    `model.import_report`, and every `VerificationFailed` (`VerificationError`,
    `ImportVerificationError`) carries it as `.report`.

    `direction`: `"export"`, `"import"` or `"verify"`; `path`: the ONNX file; `model`: the
    Keras model of an export or verification (not serialized: `to_dict` gives its name).
    Its sections, None where they do not apply: `verify`, the float comparison tensor by
    tensor (a `VerifyReport` for export and verify, an `ImportVerifyReport` for import), and
    `quantization`, the INT8 rule (a `QuantReport`). The export's own facts (method, graph
    size, timings, precision, target lint) are fields. An attribute the report does not
    have is read from its sections, so `report.checks`, `report.outputs` or
    `report.layers` reach the section that holds them.
    """

    path: str
    method: str = None
    reason: str = ""
    opset: int = None
    direction: str = "export"
    model: object = dataclasses.field(default=None, repr=False, compare=False)
    node_count: int = 0
    transpose_count: int = 0
    file_size: int = 0
    export_seconds: float = 0.0
    # precision="int8": the INT8 stage's wall time (pre-processing, calibration,
    # quantize_static and the quantized rule's verification, `quantization.seconds`)
    int8_seconds: float = None
    bn_folded: int = 0
    fused: int = 0
    external_data: str = None
    precision: str = "float32"
    # float16: nodes kept float32 because their values leave float16's range
    float16_kept: list = dataclasses.field(default_factory=list)
    target: str = "cpu"
    # what the target is known to reject or slow, with references (`targets.RULES`)
    lint: list = dataclasses.field(default_factory=list)
    verify: object = None  # VerifyReport (export, verify) or ImportVerifyReport (import)
    quantization: object = None  # a QuantReport (INT8)

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Report: direction must be one of {DIRECTIONS}, got "
                             f"{self.direction!r}")

    def __getattr__(self, name):
        # only called for what the report itself lacks: read it from its sections
        if name.startswith("__") or name in ("verify", "quantization"):
            raise AttributeError(name)
        for section in (self.__dict__.get("verify"), self.__dict__.get("quantization")):
            if section is not None and hasattr(section, name):
                return getattr(section, name)
        raise AttributeError(f"{type(self).__name__} ({self.__dict__.get('direction')}) has "
                             f"no attribute {name!r}, nor do its sections")

    @property
    def sections(self):
        return [s for s in (self.verify, self.quantization) if s is not None]

    @property
    def passed(self):
        """Every section passed; an import or verification with no section never does (an
        export without verification has none and passes: nothing was claimed)."""
        if not self.sections:
            return self.direction == "export"
        return all(s.passed for s in self.sections)

    @property
    def diagnosis(self):
        """The tensors whose ONNX values diverge from Keras's, in graph order."""
        return getattr(self.verify, "diagnosis", None) or []

    def why(self):
        """Why it does not pass, in one line (`"passed"` when it does): the first failing
        section's own account."""
        if self.passed:
            return "passed"
        if not self.sections:
            return f"nothing was verified ({self.direction})"
        bad = next(s for s in self.sections if not s.passed)
        return bad.reason() if callable(getattr(bad, "reason", None)) else \
            bad.summary().splitlines()[0]

    def summary(self):
        """The one rendering: a line for the run, then each section's own lines."""
        what = {"export": f"export ({self.method})" if self.method else "export",
                "import": "import", "verify": "verification"}[self.direction]
        state = "passed" if self.passed else (
            "not verified" if not self.sections else "FAILED")
        lines = [f"{what} of {self.path or '(in memory)'}: {state}"]
        for section in self.sections:
            lines.append(section.summary())
        return "\n".join(lines)

    def to_dict(self):
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("model", "verify", "quantization")}
        out["model"] = getattr(self.model, "name", None)
        out["passed"] = self.passed
        for key in ("verify", "quantization"):
            section = getattr(self, key)
            out[key] = _section_dict(section) if section is not None else None
        return out

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, default=str)


def _section_dict(section):
    if hasattr(section, "to_dict"):
        return section.to_dict()
    return json.loads(section.to_json())
