"""How far an ONNX tensor may be from Keras's, and why: the tolerance rule, measured.

Errors are relative to each tensor's scale, `rel = max|onnx - keras| / max|keras|`, so a
random-init softmax (values ~1e-3) or MobileNet logits (~1e-12) are judged by the same
rule as a ReLU map of magnitude 10. A tensor fails when `rel > tolerance`, when its
shape differs, or when either side holds a NaN or an infinity (NaN on both sides is no
agreement: a model whose outputs are NaN must not verify). A tensor whose reference is
constant to float32 precision (or zero) proves nothing either way: it is reported as
uninformative, never as a pass.

The numbers below come from `python benchmarks/verification.py` (benchmarks/RESULTS.md,
section "Verification"): correct exports of the zoo and of keras.applications models
with randomised BatchNorm statistics, every tensor the graph keeps, on TensorFlow, JAX
and torch, at every onnxruntime optimisation level; and the smallest real faults
injected into those graphs (tests/test_verification_faults.py).
"""

import dataclasses

# Rounding spread of correct float32 exports on the CPU provider: the largest `rel` seen
# over every compared tensor, with BatchNorm statistics as after training, at every ORT
# level (benchmarks/RESULTS.md section 5 has the table). Plain conv nets stay below 1e-4
# (zoo, ResNet, DenseNet, Inception, MobileNet, VGG: 5e-7 .. 8e-5); the squeeze-and-
# excitation gates of EfficientNet amplify rounding: up to 4.2e-4 over 4 seeds at 64x64,
# 1.4e-3 seen once (B3), 3.3e-3 at EfficientNetB4 (benchmark only, like B5-B7).
MEASURED_CPU_SPREAD = 1.4e-3
# The tolerance sits above the spread and below the smallest injected fault that changes
# a tensor beyond that spread: one conv's weights x1.05 moves it by >= 5e-2; a BatchNorm
# folded with the wrong epsilon (1e-3 for 1.001e-5) by 1.3e-3 (DenseNet121) .. 0.86
# (MobileNet): those below the tolerance are within the rounding spread of deep nets,
# and the fault tests list them as survivors.
CPU_TOLERANCE = 2e-3
# cuDNN may pick TF32 or Winograd kernels: ~1e-3 relative is normal there (not measured
# here: no GPU was lent; the value follows NVIDIA's TF32 mantissa of 10 bits).
CUDA_TOLERANCE = 1e-2
# onnxruntime against itself (deployed level vs unoptimised, same graph, same inputs):
# fusions reorder float32 sums only. Measured on the fault-test models: 0 .. 3e-5 of the
# output scale (ResNet50V2: 1.9e-5). An optimisation is reported as changing semantics
# when it moves the outputs by more than this and more than twice the Keras-vs-ONNX
# rounding of the same outputs (deep SE-gated nets such as EfficientNet amplify both).
# onnxruntime 1.31's Pad-into-MaxPool fusion moved ResNet50V2's outputs by 3.7e-4.
MEASURED_LEVEL_SPREAD = 3e-5
LEVEL_TOLERANCE = 1e-4
# Some models amplify rounding: random-weight EfficientNetB5 at 64x64 moves its top
# tensors by 4.7e-3 of their scale when its inputs move by one float32 ulp, and a correct
# export differs from Keras there by up to 0.11 (block7c_se_excite) while every layer, fed
# the graph's values of its inputs, matches Keras to 1.1e-5. Measured ratio of the export's
# error to Keras's own one-ulp sensitivity, every tensor of that model: <= 6.3. A tensor
# beyond tolerance is accepted as amplified rounding below this multiple of it, and only
# when every layer matches on the same inputs (verify.Verifier._explain_amplification).
MEASURED_AMPLIFICATION_RATIO = 6.3
AMPLIFICATION = 20
DEFAULT_TOLERANCES = {"CPUExecutionProvider": CPU_TOLERANCE,
                      "CUDAExecutionProvider": CUDA_TOLERANCE}
# Models with int8 layers (`model.quantize("int8")`): the graph rounds each layer's inputs
# exactly as Keras does given the same values, but float32 differences of ~1e-7 in a sum
# flip an input's rounding now and then: one int8 step (1/127 of that tensor's scale) at
# one element, carried downstream. Such a tensor is accepted when its RMS error is at most
# this fraction of its RMS (30 dB SQNR) *and* every layer, fed the graph's own inputs,
# matches Keras within the tolerance (`judge.explain_amplification`).
INT8_FLIP_RMS = 10 ** (-30 / 20)
# Half-precision computation (in Keras or in the graph) widens the tolerance to this.
LOW_PRECISION_TOLERANCES = {"float16": 1e-2, "bfloat16": 4e-2}
# A reference whose values span less than this fraction of their magnitude is constant to
# float32 precision (a random-init softmax over near-zero logits): uninformative.
UNINFORMATIVE_SPREAD = 1e-5
# References smaller than this are zero for our purposes (float32 denormals start ~1e-38).
TINY = 1e-30
# The median and 99th percentile of a tensor's error come from an evenly strided sample of
# at most this many elements: a full sort of every tensor would double verification time.
SAMPLE = 16384  # rank error of the 99th percentile ~0.1%; 65536 cost ResNet50 0.1 s

TOLERANCE_RULE = (
    "a tensor fails when max|onnx - keras| > tolerance x max|keras| (default "
    f"{CPU_TOLERANCE:g} on CPU, {CUDA_TOLERANCE:g} on CUDA, {LOW_PRECISION_TOLERANCES['float16']:g} "
    f"for float16); NaN or Inf on either side fails; constant or zero references are "
    f"uninformative and never pass"
)


@dataclasses.dataclass(kw_only=True)
class Statistics:
    """What one comparison measured: `rel` is the max abs error over max|reference|."""

    scale: float = 0.0
    max_abs: float = 0.0
    rel: float = 0.0
    rms_rel: float = 0.0
    cosine: float = 1.0
    # as Polygraphy reports them: error/scale's median and 99th percentile (over an evenly
    # strided sample of at most SAMPLE elements), and the PSNR of the error in dB
    median_rel: float = 0.0
    p99_rel: float = 0.0
    psnr: float = float("inf")
    actual_shape: tuple = None  # set when the compared tensor's shape differs
    # where NaN/Inf appear: "keras", "onnx" (the other side of the comparison) or "both"
    nonfinite: str = None

    def statistics(self):
        """These fields alone, to copy into a report row."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Statistics)}


@dataclasses.dataclass(kw_only=True)
class TensorError(Statistics):
    """Error statistics of one tensor, and what the rule makes of them."""

    shape: tuple
    informative: bool = True
    shape_ok: bool = True
    finite_ok: bool = True

    def failed(self, tolerance):
        return not self.shape_ok or not self.finite_ok or (self.informative and
                                                           self.rel > tolerance)


# Bounded activations (Sigmoid, Tanh, Softmax: outputs within [-1, 1]) are computed by
# onnxruntime to an absolute accuracy, not a relative one: its CPU Sigmoid is within
# 1.55e-7 of float64 over [-30, 30], but up to 5x off relative to the value in the tail
# (x < -15), where TensorFlow's is within 5e-7 relative. A saturated map (a text detector
# on an input without text: max 2.7e-7) is therefore judged against this floor on its
# scale instead of its own max: two sides' 1.55e-7 / 1e-3 = 3.1e-4, below CPU_TOLERANCE.
BOUNDED_SCALE_FLOOR = 1e-3
BOUNDED_OPS = ("Sigmoid", "HardSigmoid", "Tanh", "Softmax")


def tensor_error(actual, expected, cosine=False, matching_inf_ok=False, scale_floor=0.0):
    """Compares `actual` with `expected` (the reference) relative to its scale.

    float32 arithmetic: the statistics need ~3 digits, and converting every tensor of a
    large model to float64 would double verification time. `cosine=True` adds the
    smallest per-sample cosine similarity (float64, for the few outputs it is asked for).
    NaN on either side fails; so does an infinity, except, with `matching_inf_ok` (tensors
    inside the graph), the same infinities at the same places on both sides: -inf padding
    before a max pool (keras-hub's ResNetV2) is the model's own design, and the pool's
    output, compared too, is finite. `scale_floor` is the least scale the error is
    taken relative to (`BOUNDED_SCALE_FLOOR` for bounded activations).
    """
    import numpy as np  # here, not at the top: the CLI reads the constants before parsing

    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        return TensorError(shape=tuple(e.shape), actual_shape=tuple(a.shape), shape_ok=False,
                           rel=float("inf"),
                           max_abs=float("inf"), rms_rel=float("inf"), cosine=0.0)
    if e.size == 0:
        return TensorError(shape=tuple(e.shape), informative=False)
    a32, e32 = a.astype(np.float32, copy=False), e.astype(np.float32, copy=False)
    diff = np.subtract(a32, e32).ravel()
    low, high = (float(diff.min()), float(diff.max())) if diff.size else (0.0, 0.0)
    nonfinite = None
    if not (np.isfinite(low) and np.isfinite(high)):
        # a NaN or an infinity on some side (or a difference past float32's range)
        e_finite, a_finite = np.isfinite(e32), np.isfinite(a32)
        a_bad, e_bad = not a_finite.all(), not e_finite.all()
        nonfinite = "both" if a_bad and e_bad else "keras" if e_bad else "onnx" if a_bad \
            else None
        if nonfinite == "both" and matching_inf_ok and not (
                np.isnan(a32).any() or np.isnan(e32).any()) and np.array_equal(
                a32[~a_finite], e32[~e_finite]) and np.array_equal(a_finite, e_finite):
            nonfinite = None  # the same infinities in the same places
        both = e_finite & a_finite  # the statistics over the elements finite on both sides
        a32, e32 = a32[both], e32[both]
        diff = np.subtract(a32.astype(np.float64), e32).ravel()
        low, high = (float(diff.min()), float(diff.max())) if diff.size else (0.0, 0.0)
    finite_ok = nonfinite is None
    e_low, e_high = (float(e32.min()), float(e32.max())) if e32.size else (0.0, 0.0)
    scale = max(e_high, -e_low)
    spread = e_high - e_low
    max_abs = max(high, -low)
    if not np.isfinite(max_abs):
        finite_ok = False
    informative = scale > TINY and spread > UNINFORMATIVE_SPREAD * scale
    judged = max(scale, scale_floor)
    rel = max_abs / judged if judged > TINY else (0.0 if max_abs == 0 else float("inf"))
    if scale < scale_floor:
        informative = informative and spread > UNINFORMATIVE_SPREAD * scale_floor
    rms_e = _norm(e32)  # the sqrt(n) of both RMS values cancels in their ratio
    diff_norm = _norm(diff)
    rms_rel = diff_norm / rms_e if rms_e > TINY else 0.0
    median_rel = p99_rel = 0.0
    if diff.size and scale > TINY:
        sample = np.abs(diff[::max(1, diff.size // SAMPLE)])
        median_rel, p99_rel = (float(v) / scale for v in np.percentile(sample, [50, 99]))
    rms_abs = diff_norm / np.sqrt(max(diff.size, 1))
    psnr = float(20 * np.log10(scale / rms_abs)) if rms_abs > 0 and scale > TINY else \
        float("inf")
    cos = 1.0
    if cosine and a.ndim and a.shape[0]:
        a64 = np.asarray(actual, np.float64).reshape(a.shape[0], -1)
        e64 = np.asarray(expected, np.float64).reshape(e.shape[0], -1)
        norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(e64, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos_each = np.where(norms > 0, np.sum(a64 * e64, axis=1) / norms, 1.0)
        cos = float(np.nanmin(cos_each)) if np.isfinite(cos_each).any() else 0.0
    if nonfinite:
        rel = float("inf")
    return TensorError(shape=tuple(e.shape), scale=scale, max_abs=max_abs, rel=rel,
                       rms_rel=rms_rel, cosine=cos, median_rel=median_rel, p99_rel=p99_rel,
                       psnr=psnr, informative=informative, finite_ok=finite_ok,
                       nonfinite=nonfinite)


def _norm(x):
    """The 2-norm, one BLAS pass; in float64 where float32 squares would overflow."""
    import numpy as np

    x = np.ravel(x)
    if not x.size:
        return 0.0
    value = float(np.sqrt(np.dot(x, x)))
    return value if np.isfinite(value) else float(np.linalg.norm(x.astype(np.float64)))
