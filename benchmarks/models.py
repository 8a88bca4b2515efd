"""Sections 2-4 (TensorFlow backend): export time and graph size, onnxruntime latency and
% of the machine's sgemm peak, and build time from YAML. Writes JSON to --out."""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def macs(model):
    """Multiply-adds of one sample, counted from the layers' shapes."""
    import keras_convx as kc
    import keras

    total = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        out = [d for d in layer.output.shape[1:]]
        inp = [d for d in layer.input.shape[1:]]
        fmt = getattr(layer, "data_format", "channels_last")
        out_c = out[-1] if fmt == "channels_last" else out[0]
        in_c = inp[-1] if fmt == "channels_last" else inp[0]
        n_out = 1
        for d in out:
            n_out *= d
        n_in = 1
        for d in inp:
            n_in *= d
        k = 1
        for d in getattr(layer, "kernel_size", ()):
            k *= d
        if isinstance(layer, (kc.BaseSeparableConv, keras.layers.SeparableConv2D,
                              keras.layers.SeparableConv1D)):
            spatial_out = n_out // out_c
            total += spatial_out * in_c * layer.depth_multiplier * (k + out_c)
        elif isinstance(layer, (kc.BaseDepthwiseConv, keras.layers.DepthwiseConv2D,
                                keras.layers.DepthwiseConv1D)):
            total += n_out * k
        elif isinstance(layer, (kc.BaseConvTranspose, keras.layers.Conv2DTranspose,
                                keras.layers.Conv1DTranspose, keras.layers.Conv3DTranspose)):
            total += n_in * k * out_c // getattr(layer, "groups", 1)
        elif isinstance(layer, (kc.BaseConv, keras.layers.Conv1D, keras.layers.Conv2D,
                                keras.layers.Conv3D)):
            total += n_out * k * in_c // getattr(layer, "groups", 1)
        elif isinstance(layer, keras.layers.Dense):
            total += n_out * in_c
    return total


def sgemm_peak(n=2048, repeats=5):
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n)).astype("float32")
    b = a.T.copy()
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    import keras
    import numpy as np
    import onnx
    import onnxruntime as ort

    import keras_convx as kc

    scale = "t" if args.quick else None
    repeats = 1 if args.quick else args.repeats
    result = {"sgemm_gflops": sgemm_peak(512 if args.quick else 2048), "export": [],
              "inference": [], "build": {}}
    work = tempfile.mkdtemp(prefix="kcx-bench-")
    # warm up every method once (imports, first-call setup) so timings compare steady states
    tiny = kc.build_model(os.path.join(ROOT, "configs", "wavenet.yaml"), scale="t")
    for method in ("native", "tf2onnx"):
        kc.export_onnx(tiny, os.path.join(work, f"warm-{method}.onnx"), method=method, verify=False)
    tiny.export(os.path.join(work, "warm-keras.onnx"), format="onnx", verbose=False)
    for name in ("resnet50", "mobilenet", "unet"):
        # U-Net at 188x188 (a valid size of the unpadded architecture; 572 takes minutes per run)
        overrides = {"size": 188} if name == "unet" and not args.quick else {}
        model = kc.build_model(os.path.join(ROOT, "configs", f"{name}.yaml"), scale=scale,
                               **overrides)
        row = {"model": name, "params": model.count_params(), "macs": macs(model)}
        paths = {}
        for method in ("native", "tf2onnx"):
            path = os.path.join(work, f"{name}-{method}.onnx")
            t = time.perf_counter()
            report = kc.export_onnx(model, path, method=method, verify=False)
            row[f"{method}_s"] = time.perf_counter() - t
            row[f"{method}_nodes"] = report.node_count
            row[f"{method}_transposes"] = report.transpose_count
            row[f"{method}_mb"] = report.file_size / 1e6
            paths[method] = path
        path = os.path.join(work, f"{name}-keras.onnx")
        t = time.perf_counter()
        try:
            model.export(path, format="onnx", verbose=False)
            row["keras_s"] = time.perf_counter() - t
            graph = onnx.load(path)
            row["keras_nodes"] = len(graph.graph.node)
            row["keras_transposes"] = sum(n.op_type == "Transpose" for n in graph.graph.node)
            row["keras_mb"] = os.path.getsize(path) / 1e6
        except Exception as err:  # record why, don't hide it
            row["keras_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        result["export"].append(row)
        print(f"export {name}: {row}", file=sys.stderr)

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        sessions = {m: ort.InferenceSession(p, options, providers=["CPUExecutionProvider"])
                    for m, p in paths.items()}
        for batch in (1, 8):
            shape = (batch,) + tuple(model.inputs[0].shape[1:])
            x = np.random.default_rng(1).standard_normal(shape).astype("float32")
            feeds = {m: {s.get_inputs()[0].name: x} for m, s in sessions.items()}
            for m, s in sessions.items():
                s.run(None, feeds[m])
            model.predict_on_batch(x)
            times = {m: [] for m in list(sessions) + ["keras"]}
            for _ in range(repeats):  # interleaved
                for m, s in sessions.items():
                    t = time.perf_counter()
                    s.run(None, feeds[m])
                    times[m].append(time.perf_counter() - t)
                t = time.perf_counter()
                model.predict_on_batch(x)
                times["keras"].append(time.perf_counter() - t)
            med = {m: statistics.median(v) * 1e3 for m, v in times.items()}
            gflops = 2 * row["macs"] * batch / (med["native"] / 1e3) / 1e9
            result["inference"].append({
                "model": name, "batch": batch, "native_ms": med["native"],
                "tf2onnx_ms": med["tf2onnx"], "keras_ms": med["keras"],
                "ratio_native_tf2onnx": med["native"] / med["tf2onnx"],
                "native_gflops": gflops, "pct_peak": 100 * gflops / result["sgemm_gflops"]})
            print(f"infer {result['inference'][-1]}", file=sys.stderr)

    config = os.path.join(ROOT, "configs", "resnet50.yaml")
    times = {"yaml": [], "keras": []}
    for _ in range(1 if args.quick else 3):
        t = time.perf_counter()
        kc.build_model(config, scale=scale)
        times["yaml"].append(time.perf_counter() - t)
        t = time.perf_counter()
        keras.applications.ResNet50(weights=None)
        times["keras"].append(time.perf_counter() - t)
    result["build"] = {k: statistics.median(v) for k, v in times.items()}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    raise SystemExit(main())
