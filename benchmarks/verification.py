"""Measures what the verification tolerance rests on, on the current Keras backend.

- the rounding spread of correct exports: the largest error/scale over every tensor the
  graph keeps, per model and onnxruntime optimisation level, and the deployed level
  against the unoptimised graph;
- the size of the smallest real faults: each named fault of tests/faults.py injected into
  the same graphs, and the largest error/scale it causes;
- the time `export_onnx` takes for ResNet50 with and without verification.

    KERAS_BACKEND=jax python benchmarks/verification.py --out v-jax.json
    python benchmarks/verification.py --update-results v-tensorflow.json v-jax.json v-torch.json

The second form writes section 5 of benchmarks/RESULTS.md from the JSON files.
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]  # the fault table and the BatchNorm helper


# squeeze-and-excitation nets: the largest rounding spread among the applications tested
EFFICIENT_NETS = ("EfficientNetB0", "EfficientNetB3", "EfficientNetB5", "EfficientNetB7",
                  "EfficientNetV2B0", "EfficientNetV2S", "EfficientNetV2L")


def measure(models, repeats=3):
    import keras
    import numpy as np
    import onnx

    import keras_convx as kc
    from faults import MUTATIONS, mutate
    from helpers import realistic_batch_norm
    from keras_convx.exporter import ExportError, Verifier, tensor_map
    from keras_convx.exporter.verify import LEVELS, metadata
    from test_verification_faults import MODELS

    def zoo_224():  # what `make demo` exports
        return kc.build_model(os.path.join(ROOT, "configs", "resnet50.yaml"))

    from test_applications import build, input_size

    def application(name):  # as tests/test_applications.py builds it (seeded weights)
        return lambda: build(name, seed=0)

    MODELS = dict(MODELS, **{"zoo-resnet50 224x224": zoo_224},
                  **{f"{n} {input_size(n)}x{input_size(n)}": application(n)
                     for n in EFFICIENT_NETS})
    out = {"backend": keras.backend.backend(), "models": {}, "faults": {}, "timing": {}}
    work = tempfile.mkdtemp()
    for name in models:
        keras.utils.set_random_seed(len(name))
        model = MODELS[name]()
        if not name.startswith("Efficient"):  # build() already did
            realistic_batch_norm(model, seed=len(name))
        path = os.path.join(work, f"{name}.onnx")
        kc.export_onnx(model, path, method="native", verify=False)
        proto = onnx.load(path)
        verifier = Verifier(model, metadata(proto), tensor_map.read(proto))
        row = {}
        for level in LEVELS:
            report = verifier.verify(proto, optimization_level=level)
            compared = report.informative  # pass, FAIL and amplified
            amplified = [c for c in compared if c.status == "amplified"]
            row[level] = {"worst": max(c.rel for c in compared), "passed": report.passed,
                          "amplified": len(amplified), "local_worst": report.local_worst,
                          "vs_unoptimised": report.level_spread,
                          "ort_problem": report.ort_problem}
        out["models"][name] = row
        ctx = {"model": model, "tensor_map": tensor_map.read(proto)}
        for fault in MUTATIONS:
            mutant, target = mutate(proto, fault, ctx)
            if target is None:
                continue
            try:
                report = verifier.verify(mutant, optimization_level="disable")
                # inf: a shape the model does not have (caught, but no size to measure)
                effect = max((c.rel for c in report.informative), default=float("inf"))
                caught = not report.passed
            except ExportError:
                effect, caught = float("inf"), True
            out["faults"].setdefault(fault, []).append(
                {"model": name, "effect": effect, "caught": caught})
        print(f"{name}: done", file=sys.stderr, flush=True)
    # export time of ResNet50, with and without verification (median of repeats)
    for label, make in (("keras.applications.ResNet50 96x96", lambda: keras.applications.ResNet50(
                            weights=None, input_shape=(96, 96, 3))),
                        ("keras.applications.ResNet50 224x224", lambda: keras.applications.ResNet50(
                            weights=None, input_shape=(224, 224, 3)))):
        model = realistic_batch_norm(make(), seed=1)
        path = os.path.join(work, "r50.onnx")
        kc.export_onnx(model, path, verify=False)  # warm-up
        times = {"export only": [], "export + verification": [], "verification": []}
        for _ in range(repeats):
            start = time.perf_counter()
            kc.export_onnx(model, path, verify=False)
            times["export only"].append(time.perf_counter() - start)
            start = time.perf_counter()
            report = kc.export_onnx(model, path)
            times["export + verification"].append(time.perf_counter() - start)
            times["verification"].append(times["export + verification"][-1]
                                         - report.export_seconds)
        out["timing"][label] = {k: float(np.median(v)) for k, v in times.items()}
    return out


def render(results):
    """Markdown lines of section 5 from the per-backend JSON results."""
    lines = ["## 5. Verification: rounding spread of correct exports vs the smallest faults", "",
             "Made by `KERAS_BACKEND=<b> python benchmarks/verification.py --out v-<b>.json` per "
             "backend, then `python benchmarks/verification.py --update-results v-*.json`. "
             "BatchNorm statistics as after training (tests/helpers.py `realistic_batch_norm`); "
             "error/scale = max|onnx - keras| / max|keras| over every tensor the graph keeps "
             "(layer outputs, pre-activations, graph outputs).", "",
             "| backend | model | worst error/scale, ORT disable / basic / extended / all "
             "| deployed (all) vs unoptimised | onnxruntime problem |",
             "|---|---|---|---:|---|"]
    for res in results:
        for name, row in res["models"].items():
            worst = " / ".join(f"{row[lv]['worst']:.1e}" for lv in
                               ("disable", "basic", "extended", "all"))
            problem = row["all"]["ort_problem"]
            where = f"at {problem['first_tensor']}" if problem else "none"
            spread = row["all"]["vs_unoptimised"]
            lines.append(f"| {res['backend']} | {name} | {worst} | "
                         f"{spread:.1e} | {where} |" if spread is not None else
                         f"| {res['backend']} | {name} | {worst} | - | {where} |")
    lines += ["", "| backend | fault | caught | smallest error/scale it causes (model) |",
              "|---|---|---:|---|"]
    for res in results:
        for fault, rows in res["faults"].items():
            caught = sum(r["caught"] for r in rows)
            finite = [r for r in rows if r["effect"] != float("inf")]
            small = min(finite, key=lambda r: r["effect"]) if finite else None
            smallest = f"{small['effect']:.1e} ({small['model']})" if small else \
                "shape changed or graph rejected by onnxruntime (every model)"
            missed = [f"{r['model']} ({r['effect']:.1e})" for r in rows if not r["caught"]]
            if missed:
                smallest += "; not caught: " + ", ".join(missed)
            lines.append(f"| {res['backend']} | {fault} | {caught}/{len(rows)} | {smallest} |")
    lines += ["", "| backend | model | export only s | export + verification s | "
                  "verification s |", "|---|---|---:|---:|---:|"]
    for res in results:
        for label, t in res["timing"].items():
            lines.append(f"| {res['backend']} | {label} | {t['export only']:.2f} | "
                         f"{t['export + verification']:.2f} | {t['verification']:.2f} |")
    return lines


def update_results(paths):
    from benchmarks.sections import update

    update(5, render, paths)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write this backend's measurements as JSON")
    parser.add_argument("--models", help="comma-separated subset of the fault-test models")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--update-results", nargs="+", metavar="JSON",
                        help="write RESULTS.md section 5 from these files and stop")
    args = parser.parse_args(argv)
    if args.update_results:
        update_results(args.update_results)
        return 0
    from test_verification_faults import MODELS

    from test_applications import input_size

    models = args.models.split(",") if args.models else list(MODELS) + [
        "zoo-resnet50 224x224"] + [f"{n} {input_size(n)}x{input_size(n)}" for n in EFFICIENT_NETS]
    results = measure(models, args.repeats)
    text = json.dumps(results, indent=1, default=str)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
