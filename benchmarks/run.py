"""`make bench`: runs sections 1-4, then writes RESULTS.md and results.png into `--out`
(default a new folder under benchmarks/runs/); `--update-results` also rewrites the
recorded benchmarks/RESULTS.md and results.png.

Section 1 runs once per backend in its own process (the backend is fixed at import);
sections 2-4 run on the TensorFlow backend (tf2onnx and Keras's export need it).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benchmarks")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # `python benchmarks/run.py` puts only benchmarks/ there


def _run(script, backend, out, extra):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, os.path.join(HERE, script), "--out", out] + extra
    subprocess.run(cmd, env=env, check=True)
    with open(out) as f:
        return json.load(f)


def machine():
    import keras
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, keras "
            f"{keras.__version__}, onnxruntime {onnxruntime.__version__}")


def write_results(layers, models, out_dir, command, quick):
    lines = [
        "# Benchmark results",
        "",
        f"Made by `{command}` on {time.strftime('%Y-%m-%d')}" + (" (quick smoke run)" if quick else ""),
        f"Machine: {machine()}.",
        "",
        "Each comparison is timed in one run, interleaved (A B A B ...), median of the repeats; "
        "ratios are what to read, absolute times are for scale only.",
        "",
        "## 1. Layers vs `keras.layers` (ratio = keras_convx / Keras, target <= 1.05)",
        "",
        "Compiled as users run them: `tf.function` (TensorFlow), `jax.jit` (JAX), eager (torch). "
        "The last two rows compare extensions with what a user would write instead "
        "(`keras.ops.pad(mode='reflect')` + `Conv2D`; a grouped `Conv3D`).",
        "",
        "| backend | layer | pass | keras_convx ms | Keras ms | ratio | target met |",
        "|---|---|---|---:|---:|---:|:--:|",
    ]
    for r in layers:
        lines.append(f"| {r['backend']} | {r['case']} | {r['pass']} | {r['ours_ms']:.2f} | "
                     f"{r['keras_ms']:.2f} | {r['ratio']:.2f} | {'yes' if r['ratio'] <= 1.05 else 'no'} |")
    lines += [
        "",
        "## 2. Export (native vs tf2onnx vs Keras's `model.export(format='onnx')`)",
        "",
        "| model | params | native s | tf2onnx s | Keras s | Keras/native | nodes native/tf2onnx/Keras | Transpose native/tf2onnx/Keras | MB native/tf2onnx |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in models["export"]:
        keras_s = r.get("keras_s")
        keras_txt = "-" if keras_s is None else f"{keras_s:.2f}"
        speedup = "-" if keras_s is None else f"{keras_s / r['native_s']:.0f}x"
        nodes = f"{r['native_nodes']}/{r['tf2onnx_nodes']}/{r.get('keras_nodes', '-')}"
        transposes = (f"{r['native_transposes']}/{r['tf2onnx_transposes']}/"
                      f"{r.get('keras_transposes', '-')}")
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['native_s']:.2f} | {r['tf2onnx_s']:.2f} | "
            f"{keras_txt} | {speedup} | {nodes} | {transposes} | "
            f"{r['native_mb']:.1f}/{r['tf2onnx_mb']:.1f} |")
        if "keras_error" in r:
            lines.append(f"|  | Keras export failed: {r['keras_error']} |||||||")
    lines += [
        "",
        f"## 3. onnxruntime CPU inference (2 threads); sgemm peak {models['sgemm_gflops']:.1f} GFLOP/s",
        "",
        "| model | batch | native ms | tf2onnx ms | native/tf2onnx | Keras predict_on_batch ms | native GFLOP/s | % of sgemm peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in models["inference"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['native_ms']:.2f} | {r['tf2onnx_ms']:.2f} | "
                     f"{r['ratio_native_tf2onnx']:.2f} | {r['keras_ms']:.2f} | "
                     f"{r['native_gflops']:.1f} | "
                     # a smoke run's timings are too short to set against the peak
                     f"{'-' if quick else format(r['pct_peak'], '.0f') + '%'} |")
    b = models["build"]
    lines += [
        "",
        "## 4. Build",
        "",
        f"ResNet50 from `configs/resnet50.yaml`: {b['yaml']:.2f} s; "
        f"`keras.applications.ResNet50(weights=None)`: {b['keras']:.2f} s "
        f"(ratio {b['yaml'] / b['keras']:.2f}).",
        "",
    ]
    target = os.path.join(out_dir, "RESULTS.md")
    kept = ""  # sections 5 and 6 come from their own, longer runs: kept as they are
    if os.path.exists(target):
        from benchmarks.sections import section_pattern

        with open(target) as f:
            old = f.read()
        for number in (5, 6, 7, 8):
            found = section_pattern(number).search(old)
            kept += found.group(0).rstrip("\n") + "\n\n" if found else ""
    with open(target, "w") as f:
        f.write("\n".join(lines) + "\n" + kept + NOTES)
    plot(layers, models, os.path.join(out_dir, "results.png"))


NOTES = """## Notes: targets, causes, evidence

- **Layer ratios.** keras_convx's layers call the same `keras.ops` kernels as Keras's; for
  standard arguments the traced programs are the same ops (e.g. `padding="same"` with zeros
  passes straight to the backend's SAME). On this shared 2-core machine, identical programs
  still drift between runs: the JAX `Conv2D` fwd+bwd row, the same XLA program on both sides,
  read 0.99 in one full run and 1.15 in the next. A single row above 1.05 is therefore only a
  finding if it repeats (the torch `UpSampling2D` bilinear fwd+bwd row read 1.33 and 1.61 in two
  runs; both sides call `keras.ops.image.resize`, and an interleaved re-measurement of just
  that pair gave 51.3 ms for keras_convx vs 64.4 ms for Keras). Repeatable gaps and causes:
  - transposed convolutions with explicit (PyTorch-style) padding, `output_size`, groups, or
    dilation on TensorFlow are computed as a full transposed (or forward) convolution plus a
    crop, which costs a copy and more backward work; `valid`/`same` use the backend's own sizing
    (no crop) wherever its arithmetic equals ours;
  - `DepthwiseConv3D` has no backend op: it reshapes its kernel to the grouped-conv layout on
    each call (sub-millisecond; visible only on tiny torch timings).
- **Export.** Native export time is dominated by copying the weights (ResNet50: ~100 MB):
  profiled at ~0.25 s lowering (including the weight conversion), ~0.17 s `onnx.checker`
  with `full_check`, ~0.09 s serialization and ~0.08 s writing. Keras's own export took
  13-16 s here (the issue quoted ~30 s on this machine kind); the ratio column is measured
  against the faster figure.
- **% of peak.** The peak is NumPy's sgemm (2048^3) in the same run. onnxruntime's MLAS
  convolution kernels can beat NumPy's BLAS on this CPU, so values near or above 100% mean
  the graph runs at the machine's practical limit, not that the limit is exceeded.
"""


def plot(layers, models, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 7), gridspec_kw={"width_ratios": [3, 1.3]})
    ax = axes[0]
    labels = [f"{r['case']} [{r['pass']}]" for r in layers if r["backend"] == layers[0]["backend"]]
    backends = sorted({r["backend"] for r in layers})
    height = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        rows = [r for r in layers if r["backend"] == backend]
        ax.barh([j + i * height for j in range(len(rows))], [r["ratio"] for r in rows], height,
                label=backend)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.axvline(1.05, color="red", lw=0.8, ls="--", label="target 1.05")
    ax.set_yticks([j + height for j in range(len(labels))], labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio keras_convx / keras.layers (lower is better)")
    ax.legend(fontsize=8)
    ax.set_title("Layers vs keras.layers")
    ax = axes[1]
    rows = models["inference"]
    ax.barh([f"{r['model']} b{r['batch']}" for r in rows], [r["ratio_native_tf2onnx"] for r in rows])
    ax.axvline(1.0, color="red", lw=0.8, ls="--")
    ax.invert_yaxis()
    ax.set_xlabel("onnxruntime latency native / tf2onnx")
    ax.set_title("ONNX graphs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat (smoke test)")
    parser.add_argument("--out", help="folder for RESULTS.md and results.png (default: a new "
                                      "folder under benchmarks/runs/, git-ignored)")
    parser.add_argument("--update-results", action="store_true",
                        help="also rewrite the recorded benchmarks/RESULTS.md and results.png "
                             "(sections 1-4; sections 5-7 come from their own scripts)")
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    if args.quick and args.update_results:
        parser.error("--update-results: a --quick smoke run never replaces the recorded results")
    out = args.out or os.path.join(HERE, "runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    command = "python benchmarks/run.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    repeats = ["--repeats", "1" if args.quick else str(args.repeats)]
    quick = ["--quick"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        layers = []
        for backend in args.backends.split(","):
            layers += _run("layers.py", backend, os.path.join(tmp, f"l-{backend}.json"), quick + repeats)
        models = _run("models.py", "tensorflow", os.path.join(tmp, "m.json"),
                      quick + ["--repeats", "1" if args.quick else "10"])
    write_results(layers, models, out, command, args.quick)
    print(f"wrote {os.path.join(out, 'RESULTS.md')} and results.png")
    if args.update_results:
        write_results(layers, models, HERE, command, args.quick)
        print(f"updated {os.path.join(HERE, 'RESULTS.md')} and results.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
