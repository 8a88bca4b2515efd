"""The quantized rule: INT8 graphs judged by signal-to-quantization-noise ratio.

Elementwise tolerance means nothing after quantization (every tensor moves by up to half a
quantization step by design), so an INT8 graph is judged as onnxruntime's
`qdq_loss_debug` compares one: SQNR = 10 log10(sum(ref^2) / sum((ref - q)^2)) in dB.

- Every mapped tensor (the exporter's tensor map), at onnxruntime's BASIC level with the
  tensor exposed: the QDQ graph against the float graph it was quantized from (the
  quantization alone) and against Keras (everything); and once more with every mapped
  tensor's inputs teacher-forced (fed the float graph's values), which measures each
  layer's own error. A tensor below `LAYER_SQNR_DB` fails when its own layer lost
  `LAYER_DROP_DB` of its inputs' SQNR (`own_loss`): a fault makes its own layer lose far
  more than rounding, and everything after it inherits it. A tensor below it by
  inheritance (a BatchNormalization or activation amplifying its inputs' noise) blames
  the upstream layer whose own error dominates (`attribute`), if one does.
- The graph outputs, at BASIC and at the deployed level (onnxruntime's EXTENDED/ALL
  fusions move QLinearConv results by whole steps): SQNR and the smallest per-sample
  cosine against Keras, and top-1 agreement for classifiers, on held-out data.

The thresholds were measured (benchmarks/quant_spread.py, RESULTS.md section 13): healthy
quantizations of the test models against the fault kinds.
"""

import dataclasses
import json

import numpy as np

# A mapped tensor fails when its SQNR against the float graph is below LAYER_SQNR_DB *and*
# its own layer lost at least LAYER_DROP_DB of its inputs' SQNR (the mapped tensors it is
# computed from): a fault costs its own layer at once what quantization noise costs over
# many layers. Measured (RESULTS.md section 13, 9 models) as the difference of measured
# SQNRs, which charges a layer with the noise it amplifies: healthy layers below 15 dB lost
# at most 6.0 dB each; the fault kinds cost their layer 8.7-43.5 dB. Measured with the
# inputs teacher-forced (`own_loss`), an amplifying layer loses ~0 dB (a BatchNormalization
# taking 23.9 dB to 11.1 dB: 0.1 dB, tests/test_int8_real_nets.py). Deep random-weight
# nets end with low SQNR everywhere and no layer to blame: the output rule judges them.
LAYER_SQNR_DB = 15.0
LAYER_DROP_DB = 8.0
# A bounded activation (Sigmoid, HardSigmoid, Softmax: [0, 1]; Tanh: [-1, 1]) whose own
# error, inputs teacher-forced, stays within this many times the RMS of uint8 rounding over
# its range (width / 255 / sqrt(12)) is rounding, not a fault, whatever its SQNR: a sparse
# probability map (an objectness Sigmoid near 0 almost everywhere) has little signal power,
# so SQNR calls its 1/255 steps noise. Measured: YOLOX's objectness Sigmoid (ddddocr) at
# 5.6 dB against the float graph, 7.6 dB with its inputs teacher-forced, yet its own RMS
# error is 3.8e-5, 0.03x the rounding's 1.1e-3, and the boxes after NMS agree 13/13.
# Judged in absolute terms as the float verifier judges bounded outputs: an error past
# twice the rounding (a wrong scale on a spread-out map) still fails; a coarser grid that
# only zeroes a near-zero map's values (below 2 steps) does not.
BOUNDED_ROUNDING = 2.0
BOUNDED_WIDTHS = {"Sigmoid": 1.0, "HardSigmoid": 1.0, "Softmax": 1.0, "Tanh": 2.0}
# the SQNR a graph input enters with: uint8 quantization of a full-range signal,
# 6.02 dB per bit
INPUT_SQNR_DB = 48.2
# graph outputs against Keras, on held-out data
OUTPUT_SQNR_DB = 12.0
OUTPUT_COSINE = 0.97
# share of held-out samples whose top-1 class agrees with Keras (classifier outputs:
# rank 2, at least 2 classes; near-ties within the noise agree, `top1_agreement`)
TOP1_AGREEMENT = 0.90
QUANTIZED_RULE = (f"INT8: no mapped tensor below {LAYER_SQNR_DB:g} dB SQNR against the float "
                  f"graph with {LAYER_DROP_DB:g} dB of its inputs' lost by its own layer "
                  f"(inputs teacher-forced), nor a layer whose own error dominates (by "
                  f"{LAYER_DROP_DB:g} dB) such a tensor downstream (onnxruntime BASIC); "
                  f"outputs >= {OUTPUT_SQNR_DB:g} dB and cosine >= "
                  f"{OUTPUT_COSINE:g} against Keras at BASIC and the deployed level, top-1 "
                  f"agreement >= {TOP1_AGREEMENT:.0%} for classifiers; NaN/Inf fail")
INSPECT_LEVEL = "basic"
# INT8 whose measured median run takes longer than float32's by more than this factor is
# warned about: QDQ graphs pay for their Quantize/Dequantize pairs, and on a CPU without
# int8 dot products (or a small net) that can outweigh the int8 arithmetic
SLOWER_RATIO = 1.0


def sqnr_db(reference, actual):
    """SQNR of `actual` against `reference` in dB (inf when equal, None when the reference
    is all zeros: it proves nothing); NaN/Inf in `actual` give -inf."""
    ref = np.asarray(reference, np.float64).ravel()
    act = np.asarray(actual, np.float64).ravel()
    if not np.isfinite(act).all():
        return float("-inf")
    signal = float(np.dot(ref, ref))
    if signal <= 0.0:
        return None
    noise = float(np.dot(ref - act, ref - act))
    return float("inf") if noise == 0.0 else float(10 * np.log10(signal / noise))


def min_cosine(reference, actual):
    """The smallest per-sample cosine similarity (axis 0 is the batch)."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    act = np.asarray(actual, np.float64).reshape(len(actual), -1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(act, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, np.sum(ref * act, axis=1) / norms, 1.0)
    return float(np.nanmin(cos)) if np.isfinite(cos).all() else 0.0


def is_classifier(array):
    return array.ndim == 2 and array.shape[1] >= 2


def top1_agreement(reference, actual):
    """The share of samples whose top-1 class agrees. A sample whose two classes the
    reference itself separates by less than twice that sample's RMS quantization noise
    counts as agreeing: quantization can't be asked to break a near-tie the same way
    (a random-weight net's logits are all near-ties)."""
    ref, act = np.asarray(reference, np.float64), np.asarray(actual, np.float64)
    pick = np.argmax(act, 1)
    noise = np.sqrt(np.mean((ref - act) ** 2, axis=1))
    lost = ref.max(1) - ref[np.arange(len(ref)), pick]
    return float(np.mean((pick == np.argmax(ref, 1)) | (lost <= 2 * noise)))


@dataclasses.dataclass(kw_only=True)
class QuantCheck:
    """One tensor of an INT8 graph: SQNR (dB) against the float graph and against Keras."""

    tensor: str
    layer: str
    role: str  # "internal" or "output"
    level: str
    samples: int
    sqnr_float: float = None
    sqnr_keras: float = None
    sqnr_inputs: float = None  # the lowest SQNR of the mapped tensors it is computed from
    # its SQNR with its inputs teacher-forced (fed the float graph's values): its own error
    sqnr_own: float = None
    drop: float = None  # what this layer lost itself (`own_loss`)
    cosine: float = None
    top1: float = None
    threshold: float = LAYER_SQNR_DB
    onnx: str = None  # the graph tensor compared
    # a bounded activation whose own error is its output's 8-bit rounding (BOUNDED_ROUNDING)
    rounding: bool = False
    status: str = "pass"  # "pass", "FAIL", "uninformative"
    reason: str = ""

    @property
    def passed(self):
        return self.status != "FAIL"


@dataclasses.dataclass
class QuantReport:
    """What the quantized rule measured; `passed` when no check failed."""

    levels: list
    providers: list
    method: str = None
    calibration: str = None  # "data" or "random (not representative)"; None: re-verified
    calibration_samples: int = 0
    held_out_samples: int = 0
    kept_float: list = dataclasses.field(default_factory=list)
    # keep_float="auto" that could not make the rule pass: what it kept, and why it stops
    auto: str = None
    rule: str = QUANTIZED_RULE
    checks: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    # True when onnxruntime's symbolic shape inference failed and quant_pre_process ran
    # without it (a warning says why)
    symbolic_shapes_skipped: bool = False
    # measured on this machine (`note_latency`): median ms of one run of each graph, and
    # int8 / float32 (> 1: INT8 is slower); `latency_on` says how it was measured
    latency_ms: dict = None
    latency_ratio: float = None
    latency_on: str = None

    @property
    def passed(self):
        return not self.errors and all(c.passed for c in self.checks) and any(
            c.status == "pass" for c in self.checks)

    @property
    def failing(self):
        """The first failing check in graph order (internal tensors before outputs)."""
        return next((c for c in self.checks if c.status == "FAIL"), None)

    def worst(self, n=5):
        """The `n` mapped layers that lose most SQNR themselves (the largest drops from
        their inputs')."""
        rows = [c for c in self.checks if c.role == "internal" and c.drop is not None
                and c.drop > 0]  # a layer that gains SQNR loses nothing
        return sorted(rows, key=lambda c: -c.drop)[:n]

    def note_latency(self, float_seconds, int8_seconds, *, batch, provider, level="all"):
        """Records the measured median run time of the float32 and the INT8 graph, and
        warns when INT8 is the slower one."""
        self.latency_ms = {"float32": float_seconds * 1e3, "int8": int8_seconds * 1e3}
        self.latency_ratio = int8_seconds / float_seconds
        self.latency_on = f"onnxruntime {provider}, level {level}, batch {batch}, this machine"
        if self.slower:
            self.warnings.append(f"{self._slower_note()}: on this machine the float32 graph "
                                 f"is the faster one to deploy")

    @property
    def slower(self):
        """Whether INT8 measured slower than float32 (`note_latency`)."""
        return self.latency_ratio is not None and self.latency_ratio > SLOWER_RATIO

    def _slower_note(self):
        return (f"INT8 is {self.latency_ratio:.2f}x slower than float32 "
                f"({self.latency_ms['int8']:.2f} ms against {self.latency_ms['float32']:.2f} "
                f"ms a run, {self.latency_on})")

    def summary(self):
        auto = f"; {self.auto}" if self.auto else ""
        if self.errors:
            return "; ".join(self.errors) + auto
        slower = f"; {self._slower_note()}" if self.slower else ""
        bad = self.failing
        if bad is not None:
            return (f"{bad.role} {bad.tensor} (layer {bad.layer}, {bad.level}): {bad.reason}"
                    f"{auto}{slower}")
        outs = [c for c in self.checks if c.role == "output" and c.sqnr_keras is not None]
        low = min((c.sqnr_keras for c in outs), default=float("nan"))
        return (f"INT8 passed: {sum(c.status == 'pass' for c in self.checks)} checks, "
                f"outputs >= {low:.1f} dB against Keras{slower}")

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["passed"] = self.passed
        out["worst"] = [c.layer for c in self.worst()]
        return out

    def to_json(self):
        return json.dumps(self.to_dict(), default=float)


def own_loss(sqnr_inputs, sqnr_own):
    """The SQNR (dB) a layer loses by its own error: from `sqnr_inputs` (its inputs') to
    what its output would hold if the inputs' noise passed through unchanged and its own
    (`sqnr_own`, measured with its inputs teacher-forced) added to it. Unlike the
    difference of the measured SQNRs, a layer that amplifies its inputs' noise (a
    BatchNormalization dividing by a small variance, a steep activation) loses nothing
    here: what it amplifies is its inputs' error, not its own."""
    if sqnr_own is None or sqnr_inputs is None:
        return None
    if not np.isfinite(sqnr_own):
        return 0.0 if sqnr_own > 0 else None
    noise = 10 ** (-sqnr_inputs / 10) + 10 ** (-sqnr_own / 10)
    return float(sqnr_inputs + 10 * np.log10(noise))


def judge_internal(label, layer, keras_value, float_value, qdq_value, samples,
                   sqnr_inputs=INPUT_SQNR_DB, sqnr_own=None, own_rms=None, bounded=None):
    """A mapped tensor's check (pure: the fault tests call it directly). `sqnr_inputs`: the
    lowest SQNR of the mapped tensors it is computed from (`INPUT_SQNR_DB` for graph
    inputs); `sqnr_own`: its SQNR with its inputs teacher-forced (the layer's own error,
    `int8_verifier.teacher_forced`). What the layer lost (`drop`) is `own_loss` where
    `sqnr_own` is known, else the difference of the measured SQNRs. `bounded`: the width
    of a bounded activation's range (`BOUNDED_WIDTHS`), with `own_rms`, the RMS of its own
    error: within `BOUNDED_ROUNDING` times uint8 rounding's, the layer lost nothing."""
    row = QuantCheck(tensor=label, layer=layer, role="internal", level=INSPECT_LEVEL,
                     samples=samples, sqnr_own=sqnr_own,
                     sqnr_keras=sqnr_db(keras_value, qdq_value) if keras_value is not None
                     else None,
                     sqnr_float=sqnr_db(float_value, qdq_value) if float_value is not None
                     else None)
    against = row.sqnr_float if float_value is not None else row.sqnr_keras
    if against is None:
        row.status, row.reason = "uninformative", "the reference is all zeros"
        return row
    row.sqnr_inputs = sqnr_inputs
    rounding = None if bounded is None else bounded / 255 / np.sqrt(12)
    if rounding is not None and own_rms is not None and np.isfinite(own_rms) and \
            own_rms <= BOUNDED_ROUNDING * rounding:
        row.drop, row.rounding = 0.0, True
        if against < LAYER_SQNR_DB:
            row.reason = (f"SQNR {against:.1f} dB < {LAYER_SQNR_DB:g} dB, but its own error "
                          f"(RMS {own_rms:.2g}) is its output's uint8 rounding over a range of "
                          f"{bounded:g} (<= {BOUNDED_ROUNDING:g}x its RMS {rounding:.2g}): "
                          f"little signal, not a fault")
        return row
    if sqnr_own is not None and not (np.isneginf(sqnr_own) and np.isfinite(against)):
        row.drop = own_loss(sqnr_inputs, sqnr_own)
    else:
        row.drop = (sqnr_inputs - against) if np.isfinite(against) else None
    if against < LAYER_SQNR_DB and (row.drop is None or row.drop >= LAYER_DROP_DB):
        row.status = "FAIL"
        own = "" if sqnr_own is None else f", {sqnr_own:.1f} dB fed the float inputs"
        row.reason = (f"SQNR {against:.1f} dB against the "
                      f"{'float graph' if float_value is not None else 'Keras model'} < "
                      f"{LAYER_SQNR_DB:g} dB{own}: {_lost(row)} of its inputs' "
                      f"{sqnr_inputs:.1f} dB lost in this layer (>= {LAYER_DROP_DB:g} dB)")
    elif against < LAYER_SQNR_DB:
        row.reason = (f"SQNR {against:.1f} dB < {LAYER_SQNR_DB:g} dB, but its own error "
                      f"costs {row.drop:.1f} dB only (< {LAYER_DROP_DB:g}): inherited")
    return row


def _lost(row):
    return "all" if row.drop is None else f"{row.drop:.1f} dB"


def attribute(rows, inputs):
    """Names the cause of a tensor below `LAYER_SQNR_DB` whose own layer lost little
    (`judge_internal`'s "inherited" rows: a layer that amplifies its inputs' noise, a
    BatchNormalization dividing by a small variance, a steep activation).

    Each layer's own error, measured with its inputs teacher-forced, is a noise power
    relative to its signal, 10^(-sqnr_own/10); passed on, these add up. Of the layers
    upstream (the mapped tensors it is computed from, transitively, and itself), the one
    with the largest own noise fails when that noise is at least `LAYER_DROP_DB` above the
    others' together: it dominates the tensor's error, as a fault does, although its own
    SQNR may still be above `LAYER_SQNR_DB`. Otherwise nothing is blamed (noise grown over
    many layers: the output rule judges).

    Args:
        rows: the internal checks in graph order (`onnx` set).
        inputs: {onnx tensor: the mapped tensors it is computed from}.
    """
    by_onnx = {r.onnx: r for r in rows}
    for row in rows:
        measured = _measured(row)
        if row.status != "pass" or measured is None or measured >= LAYER_SQNR_DB \
                or row.drop is None or row.drop >= LAYER_DROP_DB or row.rounding:
            continue  # passing, or failing by its own error
        stack, seen = [row.onnx], set()
        while stack:
            name = stack.pop()
            if name not in seen and name in by_onnx:
                seen.add(name)
                stack.extend(inputs.get(name, ()))
        # a bounded activation's rounding is no layer's fault (`BOUNDED_ROUNDING`)
        noise = {n: 10 ** (-by_onnx[n].sqnr_own / 10) for n in seen
                 if by_onnx[n].sqnr_own is not None and np.isfinite(by_onnx[n].sqnr_own)
                 and not by_onnx[n].rounding}
        if not noise or row.onnx not in noise:
            continue
        top = max(noise, key=noise.get)
        rest = sum(noise.values()) - noise[top]
        margin = float("inf") if rest <= 0 else 10 * np.log10(noise[top] / rest)
        if top == row.onnx or margin < LAYER_DROP_DB:
            continue
        culprit = by_onnx[top]
        row.reason += f" from {culprit.layer}"
        if culprit.status != "FAIL":
            culprit.status = "FAIL"
            culprit.reason = (
                f"its own error ({culprit.sqnr_own:.1f} dB fed the float inputs) is "
                f"{'all' if margin == float('inf') else f'{margin:.1f} dB above'} the other "
                f"upstream layers' (>= {LAYER_DROP_DB:g} dB) and puts {row.tensor} downstream "
                f"at {measured:.1f} dB (< {LAYER_SQNR_DB:g} dB)")


def _measured(row):
    return row.sqnr_float if row.sqnr_float is not None else row.sqnr_keras


def judge_output(name, level, keras_values, qdq_values):
    """A graph output's check over every held-out batch (lists of arrays)."""
    ref = np.concatenate(keras_values)
    got = np.concatenate(qdq_values)
    row = QuantCheck(tensor=name, layer=name, role="output", level=level, samples=len(ref),
                     threshold=OUTPUT_SQNR_DB, sqnr_keras=sqnr_db(ref, got),
                     cosine=min_cosine(ref, got))
    if is_classifier(ref):
        row.top1 = top1_agreement(ref, got)
    problems = []
    if row.sqnr_keras is None:
        row.status, row.reason = "uninformative", "the Keras output is all zeros"
        return row
    if row.sqnr_keras < OUTPUT_SQNR_DB:
        problems.append(f"SQNR {row.sqnr_keras:.1f} dB < {OUTPUT_SQNR_DB:g} dB")
    if row.cosine < OUTPUT_COSINE:
        problems.append(f"cosine {row.cosine:.4f} < {OUTPUT_COSINE:g}")
    if row.top1 is not None and row.top1 < TOP1_AGREEMENT:
        problems.append(f"top-1 agreement {row.top1:.1%} < {TOP1_AGREEMENT:.0%}")
    if problems:
        row.status, row.reason = "FAIL", "; ".join(problems)
    return row
