"""ONNX import of the PyTorch test models (tests/test_import_torch.py and the issue-24
patterns of tests/torch_patterns.py, exported with
`torch.onnx.export(..., dynamo=False)` at the tests' shapes): import time, layer count,
Permute layers and error vs PyTorch, per Keras backend; and, from a separate environment,
onnx2tf's Transpose count on the same files. RESULTS.md section 10.

    KERAS_BACKEND=tensorflow python benchmarks/import_models.py --json i-tensorflow.json \
        --onnx-dir DIR          # also jax, torch; DIR keeps the .onnx files
    ONNX2TF_VENV/bin/python benchmarks/import_models.py --onnx2tf DIR --json o2t.json \
        --install "the pip command that made ONNX2TF_VENV"
    python benchmarks/import_models.py --update-results i-*.json o2t.json

The `--onnx2tf` mode imports only onnx2tf (and TensorFlow through it), so it runs in a
virtual environment of its own: onnx2tf pins versions this project's environment does not.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from benchmarks.sections import update, write_json  # noqa: E402

SECTION = 10
REPEATS = 3


def measure(folder, repeats):
    import keras
    import numpy as np
    import onnx

    import torch

    import keras_convx as kc
    from test_import_torch import export_models
    from torch_patterns import export_patterns

    models = export_models(folder)
    for name, (path, module, shapes) in export_patterns(folder).items():
        x = torch.randn(shapes[0], generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            models[name] = (path, x.numpy(), module(x).numpy())
    rows = []
    for name, (path, x, expected) in models.items():
        graph = onnx.load(path).graph
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model = kc.import_onnx(path, verify=False)
            times.append(time.perf_counter() - start)
        y = np.asarray(keras.ops.convert_to_numpy(
            model(np.moveaxis(x, 1, -1), training=False)), np.float64)
        if y.ndim > 2:  # channels-last back to PyTorch's order
            y = np.moveaxis(y, -1, 1)
        kinds = [type(layer).__name__ for layer in model.layers]
        rows.append({
            "model": name, "input": list(x.shape), "onnx_nodes": len(graph.node),
            "onnx_transposes": sum(n.op_type == "Transpose" for n in graph.node),
            "import_s": statistics.median(times), "import_times_s": times,
            "layers": len(model.layers), "permutes": kinds.count("Permute"),
            "lambdas": kinds.count("Lambda"), "params": model.count_params(),
            "rel_error": float(np.max(np.abs(y - expected)) / np.max(np.abs(expected))),
        })
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "repeats": repeats,
            "rows": rows}


def _tflite_ops(path):
    """Op names of a .tflite file, through the interpreter onnx2tf's environment has."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tensorflow.lite import Interpreter
    interpreter = Interpreter(model_path=path)
    return [op["op_name"] for op in interpreter._get_ops_details()]


def _saved_model_transposes(folder):
    import tensorflow as tf

    loaded = tf.saved_model.load(folder)
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return sum(n.op == "Transpose" for n in nodes)


def _write_sample_images(folder):
    """onnx2tf runs its check inference on 4D inputs with 3 channels on sample images it
    downloads from GitHub unless the file lies in the working directory; this machine has
    no network, so the same-named file holds seeded uniform [0, 1) images instead."""
    import numpy as np

    images = np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
    np.save(os.path.join(folder, "calibration_image_sample_data_20x128x128x3_float32.npy"),
            images)


def measure_onnx2tf(folder):
    """onnx2tf on every .onnx file of `folder` (its CLI, one process per model, so that a
    crash on one model is recorded and the next still runs)."""
    import importlib.metadata as metadata

    rows = []
    for file in sorted(f for f in os.listdir(folder) if f.endswith(".onnx")):
        name = file[:-len(".onnx")]
        out = tempfile.mkdtemp(prefix=f"onnx2tf-{name}-")
        _write_sample_images(out)
        command = [sys.executable, "-m", "onnx2tf", "-i", os.path.abspath(
            os.path.join(folder, file)), "-o", out]
        start = time.perf_counter()
        # onnx2tf runs `onnxsim` by its command name: the environment's bin folder first
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                   + os.environ.get("PATH", ""))
        proc = subprocess.run(command, capture_output=True, text=True, cwd=out, env=env)
        row = {"model": name, "seconds": time.perf_counter() - start,
               "returncode": proc.returncode}
        tflite = os.path.join(out, f"{name}_float32.tflite")
        if proc.returncode or not os.path.exists(tflite):
            lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
            errors = [line for line in lines if "Error" in line or "error" in line]
            row["error"] = (errors or lines or ["no output"])[-1][:300]
        else:
            ops = _tflite_ops(tflite)
            row.update(tflite_ops=len(ops), tflite_transposes=ops.count("TRANSPOSE"))
            try:
                row["saved_model_transposes"] = _saved_model_transposes(out)
            except Exception as e:  # recorded, not fatal: the tflite count stands alone
                row["saved_model_error"] = f"{type(e).__name__}: {e}"[:300]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    import tensorflow as tf

    return {"onnx2tf": metadata.version("onnx2tf"), "tensorflow": tf.__version__,
            "python": sys.version.split()[0], "rows": rows}


def render(results):
    imports = [r for r in results if "backend" in r]
    converters = [r for r in results if "onnx2tf" in r]
    backends = [r["backend"] for r in imports]
    first = imports[0]["rows"]
    lines = [f"## {SECTION}. ONNX import (PyTorch models)", "",
             "Made by `KERAS_BACKEND=b python benchmarks/import_models.py --json "
             "benchmarks/runs/i-b.json --onnx-dir benchmarks/runs/import_onnx` for b in "
             + ", ".join(backends) + ", then `python benchmarks/import_models.py "
             "--update-results benchmarks/runs/i-*.json` and the onnx2tf JSON below. The models "
             "are tests/test_import_torch.py's and tests/torch_patterns.py's (CSP split, ECA, channel shuffle and TF-same padding with a dynamic batch, a U-Net of any size, attention; seeded weights, BatchNorm statistics as after "
             "training), exported by `torch.onnx.export(..., dynamo=False)` at opset 17 and the "
             f"tests' input shapes; `kc.import_onnx` time is the median of {imports[0]['repeats']} "
             "imports in one process (channels_last; on a shared 2-core machine single rows "
             "drift: each run's three times are in its JSON); error is max |Keras - PyTorch| / max "
             "|PyTorch| on the test input. Layers count the InputLayer.", "",
             "| model | input (N, C, ...) | ONNX nodes | ONNX Transpose | Keras layers | Permute "
             "| params | " + " | ".join(f"import s {b}" for b in backends) + " | "
             + " | ".join(f"error {b}" for b in backends) + " |",
             "|---|---|---:|---:|---:|---:|---:|" + "---:|" * (2 * len(backends))]
    for i, row in enumerate(first):
        per = [r["rows"][i] for r in imports]
        assert all(p["model"] == row["model"] and p["layers"] == row["layers"] for p in per)
        lines.append(
            f"| {row['model']} | {'x'.join(map(str, row['input']))} | {row['onnx_nodes']} | "
            f"{row['onnx_transposes']} | {row['layers']} | "
            f"{max(p['permutes'] for p in per)} | {row['params']:,} | "
            + " | ".join(f"{p['import_s']:.2f}" for p in per) + " | "
            + " | ".join(f"{p['rel_error']:.1e}" for p in per) + " |")
    permutes = {row["model"]: max(r["rows"][i]["permutes"] for r in imports)
                for i, row in enumerate(first)}
    for onnx2tf in converters:
        lines += _onnx2tf_table(onnx2tf, permutes)
    return lines


def _onnx2tf_table(onnx2tf, permutes):
    lines = ["", f"onnx2tf {onnx2tf['onnx2tf']} (TensorFlow {onnx2tf['tensorflow']}, Python "
              f"{onnx2tf['python']}) on the same files, in a virtual environment of its own "
              f"(`{onnx2tf.get('install', 'see the script')}`), by `ONNX2TF_VENV/bin/python "
              "benchmarks/import_models.py --onnx2tf benchmarks/runs/import_onnx --json "
              f"{onnx2tf.get('json')}`: its CLI `python -m onnx2tf "
              "-i FILE -o DIR` with its defaults, one process per model, run in DIR beside a "
              "seeded stand-in for the sample images it otherwise downloads from GitHub (no "
              "network here). Transposes "
              "are counted in the float32 .tflite it writes (TRANSPOSE ops) and in its "
              "saved_model's `serving_default` graph (Transpose nodes, all on activations); "
              "ours are the Permute layers of the imported Keras model. "
              + (onnx2tf.get("note") or ""), "",
              "| model | onnx2tf s | tflite ops | tflite TRANSPOSE | saved_model Transpose "
              "| keras_convx Permute |", "|---|---:|---:|---:|---:|---:|"]
    for row in onnx2tf["rows"]:
        ours = permutes.get(row["model"], "")
        if "error" in row:
            error = row["error"].replace("|", "/").replace("`", "'")
            lines.append(f"| {row['model']} | failed (exit {row['returncode']}): `{error}` "
                         f"| | | | {ours} |")
            continue
        saved = row.get("saved_model_transposes", "n/a")
        lines.append(f"| {row['model']} | {row['seconds']:.1f} | {row['tflite_ops']} | "
                     f"{row['tflite_transposes']} | {saved} | {ours} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx-dir", help="folder for the exported .onnx files "
                        "(default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--onnx2tf", metavar="DIR",
                        help="convert DIR's .onnx files with onnx2tf instead (its own venv)")
    parser.add_argument("--install", help="with --onnx2tf: the pip command that made its "
                        "environment, recorded in the JSON")
    parser.add_argument("--note", help="with --onnx2tf: a sentence on the version used, "
                        "recorded in the JSON")
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument("--update-results", nargs="+", metavar="JSON",
                        help=f"write RESULTS.md section {SECTION} from --json files and stop")
    args = parser.parse_args(argv)
    if args.update_results:
        update(SECTION, render, args.update_results)
        return
    if args.onnx2tf:
        result = measure_onnx2tf(args.onnx2tf)
        result.update(install=args.install, note=args.note, json=args.json)
    else:
        folder = args.onnx_dir or tempfile.mkdtemp()
        os.makedirs(folder, exist_ok=True)
        result = measure(folder, args.repeats)
    print(json.dumps(result))
    write_json(args.json, result)


if __name__ == "__main__":
    main()
