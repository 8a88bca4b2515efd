"""Judging: pure functions over the values both runtimes computed (the fault-injection
tests call them directly). One rule everywhere (`rules`): error relative to each tensor's
scale; NaN/Inf fail; constant or zero references are uninformative and never pass."""

import numpy as np

from keras_convx.verification import rules
from keras_convx.verification.ort_runner import INSPECT_LEVEL, first_divergence, has_float16
from keras_convx.verification.report import TensorCheck
from keras_convx.verification.rules import LOW_PRECISION_TOLERANCES


def precision_tolerance(model, onnx_model=None):
    """Tolerance floor from the lowest precision the model or the graph computes in."""
    dtypes = {getattr(layer, "compute_dtype", "float32") for layer in getattr(model, "layers", [])}
    if onnx_model is not None and has_float16(onnx_model):
        dtypes.add("float16")
    floors = [LOW_PRECISION_TOLERANCES[d] for d in dtypes if d in LOW_PRECISION_TOLERANCES]
    return max(floors, default=0.0)


def sensitivity_key(check):
    if check.key is not None:  # an internal tensor or pre-activation, inspected run
        return ("pre" if check.role == "preactivation" else "out", check.key)
    return ("output",) + tuple(check.run) if check.run is not None else None


# ops that only move or relabel elements: a bounded activation's output stays bounded
_LAYOUT_OPS = ("Transpose", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten")


def scale_floors(onnx_model):
    """{tensor name: the least scale its error is judged against} for the tensors of
    `onnx_model` a bounded activation computes (through layout ops):
    `rules.BOUNDED_SCALE_FLOOR`, where onnxruntime's accuracy is absolute."""
    floors = {}
    for node in onnx_model.graph.node:  # topological order: producers come first
        bounded = node.op_type in rules.BOUNDED_OPS or (
            node.op_type in _LAYOUT_OPS and node.input and node.input[0] in floors)
        if bounded:
            floors.update({out: rules.BOUNDED_SCALE_FLOOR for out in node.output})
    return floors


def check(name, role, provider, level, arrays, actual, expected, tol, cosine=False, key=None,
          layer=None, run=None, scale_floor=0.0):
    err = rules.tensor_error(actual, expected, cosine=cosine,
                             matching_inf_ok=role in ("internal", "preactivation", "local"),
                             scale_floor=scale_floor)
    status = "FAIL" if err.failed(tol) else ("pass" if err.informative else "uninformative")
    return TensorCheck(tensor=name, role=role, provider=provider, level=level,
                       batch=int(arrays[0].shape[0]), shape=err.shape, tolerance=tol,
                       status=status, key=key, layer=layer or name, run=run,
                       **err.statistics())


def explain_amplification(report, provider, tol, reference, graph_values, entries):
    """Re-judges failures that Keras's own sensitivity to rounding accounts for.

    A tensor beyond tolerance is accepted as "amplified" only when (1) it moves less
    than `rules.AMPLIFICATION` x as far as Keras's own value does when the inputs move
    by one float32 ulp, and (2) every mapped layer of the graph, fed the graph's
    values of its inputs, matches Keras applied to those same values within the
    tolerance. (2) is what a wrong graph cannot pass: a fault changes its own layer
    by far more than rounding, however the model amplifies it downstream.
    """
    failed = [c for c in report.checks + report.tensors
              if c.provider == provider and c.status == "FAIL" and c.role != "local"
              and c.actual_shape is None and np.isfinite(c.rel)]
    if not failed or not graph_values:
        return
    sens = reference.sensitivity()
    int8 = any(getattr(layer, "_int8", False) for layer in reference.model._flatten_layers())
    explained = []
    for c in failed:
        s = sens.get(sensitivity_key(c))
        if s is not None:
            c.sensitivity = s
        if (s is not None and c.rel <= rules.AMPLIFICATION * s) or (
                int8 and c.rms_rel <= rules.INT8_FLIP_RMS):
            explained.append(c)
    if not explained:
        return
    local = reference.teacher_forced(graph_values)
    worst, wrong = 0.0, []
    arrays = reference.runs[reference.inspect_run]
    labels = {e.key: e.label for e in entries}
    for key, g in graph_values.items():
        ref = local.get(("out", key))
        if ref is None:
            continue
        label = labels[key]
        row = check(label, "local", provider, INSPECT_LEVEL, arrays, g, ref, tol,
                    key=key, layer=label)
        if row.status in ("pass", "FAIL"):
            worst = max(worst, row.rel)
        if row.status == "FAIL":
            wrong.append(row)
    report.local_worst = max(report.local_worst or 0.0, worst)
    if wrong:  # a layer computes differently: the failures stand, and it is the place
        report.tensors.extend(wrong)
        return
    for c in explained:
        c.status = "amplified"
    top = max(explained, key=lambda c: c.rel)
    if int8:
        report.warnings.append(
            f"{len(explained)} tensor(s) differ from Keras by more than the tolerance {tol:g} "
            f"(worst {top.rel:.3g} x its scale at {top.tensor}, RMS {top.rms_rel:.3g}): the "
            f"model has int8 layers, and float32 rounding flips an input's int8 rounding now "
            f"and then. Every layer of the graph matches Keras on the same inputs (worst "
            f"{worst:.3g} x its scale), so the graph is right")
        return
    report.warnings.append(
        f"{len(explained)} tensor(s) differ from Keras by more than the tolerance "
        f"{tol:g} (worst {top.rel:.3g} x its scale at {top.tensor}) because the model "
        f"amplifies float32 rounding: Keras's own {top.tensor} moves by "
        f"{top.sensitivity:.3g} when its inputs move by one float32 ulp. Every layer of "
        f"the graph matches Keras on the same inputs (worst {worst:.3g} x its scale), so "
        f"the graph is right; expect differences of this size between any two float32 "
        f"runs of this model (Keras backends included)")


def check_optimiser(report, onnx_model, live, provider, level, deployed, baseline,
                reference, feeds, base_dir=None):
    """The deployed level against the unoptimised graph: onnxruntime's own changes.

    Both sides are onnxruntime on the same graph, so they differ by rounding only
    (`rules.LEVEL_TOLERANCE`) unless an optimisation changed the semantics.
    """
    names = [o.name for o in onnx_model.graph.output]
    worst = max((rules.tensor_error(d, b).rel for d, b in zip(deployed, baseline)),
                default=0.0)
    report.level_spread = max(report.level_spread or 0.0, worst)
    keras_bad = [c for c in report.checks if c.provider == provider and c.status == "FAIL"]
    inspected_bad = any(c.status == "FAIL" for c in report.tensors if c.provider == provider)
    # how far apart two correct float32 computations of these outputs are (Keras and the
    # unoptimised graph): an optimisation that moves them less than that is rounding
    noise = max((c.rel for c in report.tensors if c.provider == provider
                 and c.role == "output" and c.status in ("pass", "amplified")),
                default=0.0)
    sens = reference._sensitivity  # measured when something failed
    if sens:
        noise = max([noise] + [rules.AMPLIFICATION * v for k, v in sens.items()
                               if k[0] == "output"])
    if inspected_bad or (worst <= max(rules.LEVEL_TOLERANCE, 2 * noise) and not keras_bad):
        return
    first = first_divergence(onnx_model, [e for e in live if e.kind == "output"],
                              feeds,
                              provider, level, base_dir)
    report.ort_problem = {"provider": provider, "level": level,
                          "correct_at": INSPECT_LEVEL, "output_rel": worst,
                          "first_tensor": first[0] if first else None,
                          "first_rel": first[1] if first else None}
    for c in keras_bad:  # the graph is right; onnxruntime's optimiser is not
        c.status = "ort-optimiser"
    where = f"first at {first[0]} (error {first[1]:.3g} x its scale)" if first else \
        f"outputs {', '.join(names)}"
    report.warnings.append(
        f"onnxruntime problem, not an export problem: level '{level}' optimisation changes "
        f"the results on {provider} by {worst:.3g} x the output scale, {where}; the graph "
        f"itself is right (level '{INSPECT_LEVEL}' agrees with Keras). Deploy with "
        f"GraphOptimizationLevel ORT_DISABLE_ALL, or check a newer onnxruntime")
