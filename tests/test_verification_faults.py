"""Proof by mutation: faults injected into correct exports must fail verification, and
diagnosis must name the corrupted layer; the correct exports must pass at every
onnxruntime optimisation level, with BatchNorm statistics as after training.

The kill-rate table is printed at the end of the module (one line per fault kind).
"""

import os

import keras
import numpy as np
import onnx
import pytest

import keras_convx as kc
from keras_convx.exporter import ExportError, Verifier, tensor_map
from keras_convx.verification import rules as stats
from keras_convx.exporter.verify import LEVELS, metadata
from faults import MUTATIONS, mutate
from helpers import BACKEND, realistic_batch_norm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _zoo(name):
    return lambda: kc.build_model(os.path.join(ROOT, "configs", f"{name}.yaml"), scale="t")


def _app(name, size):
    return lambda: getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))


MODELS = {
    "zoo-resnet50": _zoo("resnet50"), "zoo-mobilenet": _zoo("mobilenet"),
    "zoo-xception": _zoo("xception"), "zoo-unet": _zoo("unet"), "zoo-wavenet": _zoo("wavenet"),
    "zoo-unet3d": _zoo("unet3d"),
    "ResNet50": _app("ResNet50", 64), "ResNet50V2": _app("ResNet50V2", 64),
    "MobileNetV2": _app("MobileNetV2", 64), "DenseNet121": _app("DenseNet121", 64),
    "InceptionV3": _app("InceptionV3", 75),
}
# JAX compiles every op for every new shape: a deterministic subset, one per family.
ON_JAX = ("zoo-resnet50", "zoo-wavenet", "ResNet50V2", "MobileNetV2")
NAMES = [n for n in MODELS if BACKEND != "jax" or n in ON_JAX]

RESULTS = {}  # (model, fault) -> outcome, for the summary


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            keras.utils.set_random_seed(len(name))  # weights independent of test order
            model = realistic_batch_norm(MODELS[name](), seed=len(name))
            path = tmp_path_factory.mktemp("faults") / f"{name}.onnx"
            report = kc.export_onnx(model, path, method="native", verify=False)
            proto = onnx.load(path)
            verifier = Verifier(model, metadata(proto), tensor_map.read(proto))
            cache[name] = (model, proto, verifier, report)
        return cache[name]
    return get


def _observable_after(model, layer_name, entries):
    """The layer itself, or the first layers downstream whose tensors the graph keeps."""
    fused = {e.label for e in entries if e.status == "fused"}
    ops = {op.name: op for op in tensor_map.functional(model).operations}
    found, frontier = {layer_name}, [layer_name]
    while frontier:
        name = frontier.pop()
        for node in getattr(ops.get(name), "_outbound_nodes", []):
            nxt = node.operation.name
            if nxt not in found:
                found.add(nxt)
                if name in fused or nxt in fused:  # keep walking while nothing was observable
                    frontier.append(nxt)
    return found


@pytest.mark.thin_on_jax(2)  # 2 of the 4 a run on JAX, rotating by day (CI time)
@pytest.mark.parametrize("name", NAMES)
def test_correct_export_passes_at_every_ort_level(name, exported):
    model, proto, verifier, _ = exported(name)
    for level in LEVELS:
        report = verifier.verify(proto, optimization_level=level)
        assert report.passed, (level, report.summary())
        assert report.tensors and not report.errors
        worst = max(c.rel for c in report.checks + report.tensors if c.status == "pass")
        RESULTS[(name, f"correct@{level}")] = ("pass", worst, report.ort_problem,
                                                report.level_spread)


@pytest.mark.thin_on_jax(2)  # the same 2 models as above (one export each)
@pytest.mark.parametrize("name", NAMES)
def test_every_fault_is_caught_and_located(name, exported):
    model, proto, verifier, _ = exported(name)
    ctx = {"model": model, "tensor_map": tensor_map.read(proto)}
    for fault in MUTATIONS:
        mutant, target = mutate(proto, fault, ctx)
        if target is None:
            RESULTS[(name, fault)] = ("n/a", None, None)
            continue
        try:
            report = verifier.verify(mutant)
        except ExportError as err:  # onnxruntime refused the broken graph: caught, clearly
            RESULTS[(name, fault)] = ("killed (rejected)", None, str(err)[:80])
            continue
        effect = max((c.rel for c in report.checks), default=np.inf)
        if report.passed:
            RESULTS[(name, fault)] = ("SURVIVED", effect, target)
            # a survivor is allowed only when the fault changes no output beyond tolerance
            assert effect <= stats.CPU_TOLERANCE, (name, fault, target, effect)
            continue
        first = report.diagnosis[0].layer if report.diagnosis else None
        RESULTS[(name, fault)] = ("killed", effect, first)
        if report.errors:
            continue  # failed to run (a shape fault): nothing to locate
        allowed = _observable_after(model, target, ctx["tensor_map"])
        at_fault = max((c.rel for c in report.tensors if c.layer in allowed
                        and c.status in ("pass", "FAIL")), default=0.0)
        if at_fault <= report.diagnosis[0].tolerance if report.diagnosis else True:
            # below tolerance where it was injected: caught only as its error built up
            # downstream, so there is no layer to name (reported, not asserted)
            RESULTS[(name, fault)] = ("killed downstream", effect, first)
            continue
        assert first in allowed, (name, fault, f"diagnosis names {first}, corrupted {target}",
                                  report.summary())


def test_zz_summary(capsys):
    """Prints the kill rate per fault kind and the rounding spread per model and level."""
    if not RESULTS:
        pytest.skip("no fault results in this run (a -k selection)")
    lines = []
    for fault in MUTATIONS:
        rows = [v for (m, f), v in RESULTS.items() if f == fault and v[0] != "n/a"]
        killed = sum(1 for v in rows if v[0].startswith("killed"))
        effects = [v[1] for v in rows if v[1] is not None and np.isfinite(v[1])]
        smallest = f", smallest output effect {min(effects):.2e}" if effects else ""
        survivors = [m for (m, f), v in RESULTS.items() if f == fault and v[0] == "SURVIVED"]
        lines.append(f"{fault}: killed {killed}/{len(rows)}{smallest}"
                     + (f"; survivors {survivors}" if survivors else ""))
    for (model, kind), v in sorted(RESULTS.items()):
        if kind.startswith("correct@"):
            problem = f" (onnxruntime problem at {v[2]['first_tensor']})" if v[2] else ""
            spread = f", vs unoptimised {v[3]:.2e}" if v[3] is not None else ""
            lines.append(f"{model} {kind}: worst error/scale {v[1]:.2e}{spread}{problem}")
    with capsys.disabled():
        print(f"\n== fault injection ({BACKEND}) ==\n" + "\n".join(lines))
    total = [v for (m, f), v in RESULTS.items() if not f.startswith("correct@") and v[0] != "n/a"]
    assert all(v[0].startswith("killed") or v[1] <= stats.CPU_TOLERANCE for v in total)
