"""keras.applications through our native export and through Keras's own
`model.export(format="onnx")` (tf2onnx on TensorFlow, jax2onnx on JAX, torch.onnx on
torch), on the current backend: exported?, verified?, export time, nodes, Transposes,
onnxruntime CPU latency at batch 1 and 8.

    KERAS_BACKEND=jax python benchmarks/applications.py --out a-jax.json [--models all]
    python benchmarks/applications.py --update-results a-tensorflow.json a-jax.json a-torch.json

The second form writes section 6 of benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

# The smallest constructor of each family (the default run); `--models all` runs the 40.
SMALLEST = ["ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionV3",
            "InceptionResNetV2", "MobileNet", "MobileNetV2", "MobileNetV3Small", "NASNetMobile",
            "ResNet50", "ResNet50V2", "VGG16", "Xception"]


def _latency(path, x, repeats=10):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: x})  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def _graph_stats(path):
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return len(graph.node), sum(1 for n in graph.node if n.op_type == "Transpose")


def _nchw_free_input(model, batch, rng):
    import numpy as np

    from keras_convx.exporter.verify import model_inputs

    return model_inputs(model, {}, batch, rng)[0].astype(np.float32)


def measure(names, repeats, keras_export=True):
    import keras
    import numpy as np

    import keras_convx as kc
    from test_applications import build

    work = tempfile.mkdtemp()
    rows = []
    for name in names:
        try:
            model = build(name)
        except ValueError as err:  # Keras refuses NASNet on torch: not ours to export
            row = {"model": name, "skipped": f"Keras can't build it here: {err}"[:200]}
            print(json.dumps(row), file=sys.stderr, flush=True)
            continue
        rng = np.random.default_rng(0)
        x1, x8 = _nchw_free_input(model, 1, rng), _nchw_free_input(model, 8, rng)
        row = {"model": name, "params": int(model.count_params())}
        # ours: native export, verified tensor by tensor
        path = os.path.join(work, f"{name}-ours.onnx")
        start = time.perf_counter()
        try:
            report = kc.export_onnx(model, path, method="native", verify=False)
            row["ours_seconds"] = time.perf_counter() - start
            verified = kc.verify_onnx(model, path)
            row["ours_verified"] = verified.passed
            row["ours_ok"] = True
            row["ours_nodes"], row["ours_transposes"] = report.node_count, report.transpose_count
            row["ours_ms_b1"] = _latency(path, x1, repeats)
            row["ours_ms_b8"] = _latency(path, x8, repeats)
        except Exception as err:  # a benchmark records failures, it doesn't stop on them
            row["ours_ok"], row["ours_error"] = False, f"{type(err).__name__}: {err}"[:200]
        # Keras's own exporter on this backend
        path = os.path.join(work, f"{name}-keras.onnx")
        start = time.perf_counter()
        if not keras_export:
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            continue
        try:
            # Keras's exporter wants a model that has been called (users' models have);
            # verification's compiled runs on JAX don't count as a call
            model(x1, training=False)
            model.export(path, format="onnx", verbose=False)
            row["keras_seconds"] = time.perf_counter() - start
            row["keras_ok"] = True
            row["keras_nodes"], row["keras_transposes"] = _graph_stats(path)
            try:
                verified = kc.verify_onnx(model, path)
                row["keras_verified"] = verified.passed
                if not verified.passed:
                    row["keras_error"] = verified.summary()[:200]
            except Exception as err:
                row["keras_verified"] = False
                row["keras_error"] = f"{type(err).__name__}: {err}"[:200]
            try:
                row["keras_ms_b1"] = _latency(path, x1, repeats)
                row["keras_ms_b8"] = _latency(path, x8, repeats)
            except Exception as err:
                row.setdefault("keras_error", f"latency: {type(err).__name__}: {err}"[:200])
        except Exception as err:
            row["keras_ok"], row["keras_error"] = False, f"{type(err).__name__}: {err}"[:200]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"backend": keras.backend.backend(), "rows": rows}


def _cell(row, side, key, fmt):
    value = row.get(f"{side}_{key}")
    return "-" if value is None else format(value, fmt)


def render(results):
    lines = ["## 6. keras.applications: native export vs Keras's `model.export(format='onnx')`",
             "", "Made by `KERAS_BACKEND=<b> python benchmarks/applications.py --out a-<b>.json` "
             "per backend, then `python benchmarks/applications.py --update-results a-*.json`. "
             "The smallest constructor of each family, weights=None, BatchNorm statistics as "
             "after training, inputs as in tests/test_applications.py. Keras's exporter is "
             "tf2onnx on TensorFlow, jax2onnx on JAX, torch.onnx on torch. 'verified' = "
             "`kc.verify_onnx` passes (for Keras's files: the outputs only, they carry no "
             "tensor map). Latency: onnxruntime CPU, 2 threads, median of 10 (3 for the "
             "`--ours-only` run of the 13 benchmark-only constructors).", "",
             "| backend | model | ours: ok / verified | Keras: ok / verified | export s (ours / "
             "Keras) | nodes (ours / Keras) | Transposes (ours / Keras) | ms b1 (ours / Keras) "
             "| ms b8 (ours / Keras) |",
             "|---|---|---|---|---|---|---|---|---|"]
    partial = [f"{res['backend']} ({len(res['rows'])} models: stopped early)" for res in results
               if res.get("partial")]
    if partial:
        lines[2] += " Partial runs: " + ", ".join(partial) + "."
    summary = []
    for res in results:
        ours = keras_ = 0
        for row in res["rows"]:
            def ok(side):
                if f"{side}_ok" not in row:
                    return "not run"
                if not row.get(f"{side}_ok"):
                    return "no"
                return "yes / " + ("yes" if row.get(f"{side}_verified") else "**no**")
            ours += bool(row.get("ours_ok") and row.get("ours_verified"))
            keras_ += bool(row.get("keras_ok") and row.get("keras_verified"))
            lines.append(
                f"| {res['backend']} | {row['model']} | {ok('ours')} | {ok('keras')} | "
                f"{_cell(row, 'ours', 'seconds', '.2f')} / {_cell(row, 'keras', 'seconds', '.2f')}"
                f" | {_cell(row, 'ours', 'nodes', 'd')} / {_cell(row, 'keras', 'nodes', 'd')} | "
                f"{_cell(row, 'ours', 'transposes', 'd')} / "
                f"{_cell(row, 'keras', 'transposes', 'd')} | "
                f"{_cell(row, 'ours', 'ms_b1', '.1f')} / {_cell(row, 'keras', 'ms_b1', '.1f')} | "
                f"{_cell(row, 'ours', 'ms_b8', '.1f')} / {_cell(row, 'keras', 'ms_b8', '.1f')} |")
        ran = any("keras_ok" in row for row in res["rows"])
        summary.append(f"| {res['backend']} | {ours}/{len(res['rows'])} | "
                       + (f"{keras_}/{len(res['rows'])} |" if ran else "not run (--ours-only) |"))
    lines += ["", "Exported and verified:", "", "| backend | ours | Keras's export |",
              "|---|---:|---:|"] + summary
    errors = [(res["backend"], r["model"], r["keras_error"]) for res in results
              for r in res["rows"] if r.get("keras_error")]
    if errors:
        lines += ["", "Keras's export, what went wrong:", ""]
        lines += [f"- {b} {m}: {e}" for b, m, e in errors]
    return lines


def update_results(paths):
    from benchmarks.sections import update

    update(6, render, paths)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write this backend's measurements as JSON")
    parser.add_argument("--models", help="comma-separated names, or 'all' (default: the "
                                         "smallest of each family)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--ours-only", action="store_true",
                        help="skip Keras's exporter (e.g. for --models all)")
    parser.add_argument("--update-results", nargs="+", metavar="JSON")
    args = parser.parse_args(argv)
    if args.update_results:
        update_results(args.update_results)
        return 0
    from test_applications import APPLICATIONS

    names = APPLICATIONS if args.models == "all" else (
        args.models.split(",") if args.models else SMALLEST)
    text = json.dumps(measure(names, args.repeats, not args.ours_only), indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
