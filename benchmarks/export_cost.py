"""Export cost at real sizes (issue 34): peak memory and wall time of INT8 exports as the
calibration set grows, INT8 against the float export with verification, and the float
export's weight throughput (MB/s). RESULTS.md section 22.

    python benchmarks/export_cost.py --json benchmarks/runs/export-cost.json
    python benchmarks/export_cost.py --update-results benchmarks/runs/export-cost.json

Each case runs in a fresh process (TensorFlow backend) under `/usr/bin/time -v`, so its peak
RSS is its own; the process times its own stages with `time.perf_counter` and prints them
as JSON. Models: the zoo's U-Net at `--scale s` (572x572x1, 7.8M parameters) and
keras.applications ResNet50 and VGG16 at 224x224 (random weights; ResNet50's BatchNorm
statistics set as after training), calibrated on random inputs at the model's scale.
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import sections  # noqa: E402

SECTION = 22

# one case, run in its own process: prints {"stages": {...}, "file_mb": ...}
CASE = r'''
import json, os, sys, tempfile, time
import numpy as np
import keras
import keras_convx as kc

net, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if net == "unet":
    model = kc.build_model("unet", scale="s")
else:
    model = getattr(keras.applications, net)(weights=None, input_shape=(224, 224, 3))
rng = np.random.default_rng(0)
for layer in model.layers:  # statistics as after training
    if isinstance(layer, keras.layers.BatchNormalization):
        c = layer.moving_mean.shape[0]
        layer.moving_mean.assign(rng.normal(0, 0.1, c).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype("float32"))
shape = tuple(model.inputs[0].shape[1:])
out = {}
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "m.onnx")
    start = time.perf_counter()
    if mode == "float":
        report = kc.export_onnx(model, path, verify=False)
        out["export_s"] = report.export_seconds
    elif mode == "float-verified":
        report = kc.export_onnx(model, path)
        out["export_s"] = report.export_seconds
        out["verification_s"] = report.verify.seconds
    else:
        data = rng.uniform(0, 1, (n,) + shape).astype("float32")
        try:
            report = kc.export_onnx(model, path, precision="int8", calibration=data,
                                    verify=(mode == "int8-verified"))
        except kc.VerificationFailed as err:  # the cost is measured all the same
            report, path = err.report, os.path.splitext(path)[0] + ".failed.onnx"
            out["rule"] = report.why()[:150]
        out["export_s"] = report.export_seconds
        out["int8_s"] = report.int8_seconds
        out["passed"] = report.passed
    out["total_s"] = time.perf_counter() - start
    out["file_mb"] = os.path.getsize(path) / 1e6
    out["weights_mb"] = sum(int(np.prod(w.shape)) * 4 for w in model.weights) / 1e6
print("RESULT " + json.dumps(out))
'''

CASES = [  # (net, mode, calibration samples)
    ("unet", "int8", 2), ("unet", "int8", 8), ("unet", "int8", 80),
    ("ResNet50", "float", 0), ("ResNet50", "float-verified", 0),
    ("ResNet50", "int8", 64), ("ResNet50", "int8", 512), ("ResNet50", "int8-verified", 64),
    ("VGG16", "float", 0),
]


def run_case(net, mode, n):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", CASE, net, mode, str(n)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr)
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    row = {"net": net, "mode": mode, "samples": n, "rc": done.returncode,
           "peak_gb": int(rss.group(1)) / 1e6 if rss else None,
           "wall": wall.group(1) if wall else None}
    if found:
        row.update(json.loads(found[-1][len("RESULT "):]))
    else:
        own = [line for line in done.stderr.split("\tCommand being timed")[0].splitlines()
               if line.strip() and not line.startswith("Command exited")]
        row["error"] = (own or ["?"])[-1][:200]  # the exception's line, not time's
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def machine_bandwidth(mb=200, repeats=5):
    """This machine's own ceilings, medians: filling fresh memory (what any serialization
    pays) and writing a file of that size (page cache and writeback), in MB/s."""
    import statistics
    import tempfile
    import time

    fill, write = [], []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(repeats):
            start = time.perf_counter()
            data = bytes(bytearray(mb * 10**6))
            fill.append(mb / (time.perf_counter() - start))
            start = time.perf_counter()
            with open(os.path.join(folder, f"w{i}.bin"), "wb") as f:
                f.write(data)
            write.append(mb / (time.perf_counter() - start))
    return {"fresh_memory_mb_s": statistics.median(fill), "write_mb_s": statistics.median(write)}


def measure(args):
    import keras
    import onnxruntime

    rows = [run_case(*case) for case in CASES]
    return {"keras": keras.__version__, "onnxruntime": onnxruntime.__version__, "rows": rows,
            "machine": machine_bandwidth()}


def render(results):
    rows = results[0]["rows"]

    def find(net, mode, n=0):
        return next((r for r in rows if (r["net"], r["mode"], r["samples"]) == (net, mode, n)),
                    {})

    lines = [f"## {SECTION}. Export cost at real sizes: calibration memory, INT8 time, weight "
             f"throughput (issue 34)", "",
             "Made by `python benchmarks/export_cost.py --json benchmarks/runs/export-cost.json` "
             "then `--update-results` (TensorFlow backend, one fresh process per row under "
             "`/usr/bin/time -v`; keras " + results[0]["keras"] + ", onnxruntime "
             + results[0]["onnxruntime"] + "). Random weights (BatchNorm statistics as after "
             "training), random calibration at the model's scale; 'total' is the export call, "
             "'wall' the process (imports and model building included).", "",
             "| net | mode | calibration samples | peak RSS GB | export call s | INT8 stage s | "
             "wall | result |", "|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        result = r.get("error") or ("passed" if r.get("passed", True) else
                                    f"refused by the rule: {r.get('rule', '')}")
        int8 = f"{r['int8_s']:.1f}" if r.get("int8_s") is not None else "-"
        total = f"{r['total_s']:.1f}" if r.get("total_s") is not None else "-"
        peak = f"{r['peak_gb']:.2f}" if r.get("peak_gb") is not None else "-"
        lines.append(f"| {r['net']} | {r['mode']} | {r['samples'] or '-'} | {peak} | {total} | "
                     f"{int8} | {r['wall']} | {result} |")
    lines.append("")
    u2, u8 = find("unet", "int8", 2), find("unet", "int8", 8)
    r64, r512 = find("ResNet50", "int8", 64), find("ResNet50", "int8", 512)
    fv, i8v = find("ResNet50", "float-verified"), find("ResNet50", "int8", 64)
    facts = []
    if u2.get("peak_gb") and u8.get("peak_gb"):
        facts.append(f"peak RSS, U-Net s, 8 against 2 samples: {u8['peak_gb'] / u2['peak_gb']:.2f}x "
                     f"(target <= 1.5x)")
    if r64.get("peak_gb") and r512.get("peak_gb"):
        facts.append(f"peak RSS, ResNet50, 512 against 64 samples: "
                     f"{r512['peak_gb'] / r64['peak_gb']:.2f}x (target <= 1.5x)")
    if fv.get("total_s") and i8v.get("total_s"):
        facts.append(f"INT8 export of ResNet50 with 64 samples against the float export with "
                     f"verification: {i8v['total_s'] / fv['total_s']:.1f}x (target <= 4x)")
        both = find("ResNet50", "int8-verified", 64)
        if both.get("total_s"):
            facts.append(f"the same with the float verification and the quantized rule: "
                         f"{both['total_s'] / fv['total_s']:.1f}x")
    for net in ("ResNet50", "VGG16"):
        f = find(net, "float")
        if f.get("export_s"):
            facts.append(f"{net} float export alone: {f['file_mb']:.0f} MB in {f['export_s']:.2f} s, "
                         f"{f['file_mb'] / f['export_s']:.0f} MB/s (target >= 500 MB/s)")
    machine = results[0].get("machine")
    if machine:
        facts.append(f"this machine's ceilings (medians of 5, 200 MB): filling fresh memory "
                     f"{machine['fresh_memory_mb_s']:.0f} MB/s, writing a file "
                     f"{machine['write_mb_s']:.0f} MB/s. A float export fills the weights "
                     f"twice (the arrays' bytes, then protobuf's serialization) and writes "
                     f"them once, so ~{1 / (2 / machine['fresh_memory_mb_s'] + 1 / machine['write_mb_s']):.0f} MB/s is "
                     f"its ceiling here")
    lines += [f"- {fact}" for fact in facts]
    return lines + [""]


if __name__ == "__main__":
    sections.main(__doc__, SECTION, render, measure)
