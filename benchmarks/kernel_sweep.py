"""The backends' own CPU conv kernels against a float64 NumPy oracle, and keras_convx's
convolutions on the same inputs (issue 33): channels, batch, kernel, stride, padding,
dilation and rank, per Keras backend. RESULTS.md section 17.

    KERAS_BACKEND=tensorflow python benchmarks/kernel_sweep.py --json benchmarks/runs/k-tensorflow.json
    python benchmarks/kernel_sweep.py --update-results benchmarks/runs/k-*.json

"raw" is `keras.ops.conv` (the backend's kernel: tf.nn.convolution, torch's F.conv on
channels-last strides, lax.conv); "ours" is `keras_convx.ops.conv`, which the conv layers
call. A case is bad when its max error exceeds 1e-4 of the oracle's scale (or is not
finite); the kernels' garbage is uninitialised memory, so the count varies from run to run.
"""

import collections
import itertools
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.join(ROOT, "tests"))

from benchmarks import sections  # noqa: E402
from oracle import conv as oracle  # noqa: E402  (the suite's float64 oracle)

SECTION = 17
TOLERANCE = 1e-4


def same_pads(lengths, kernel, strides, dilation):
    pads = []
    for n, k, s, d in zip(lengths, kernel, strides, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def cases(seed):
    """(x, w, strides, padding, dilation) over the grid, sizes drawn per case."""
    rng = np.random.default_rng(seed)
    for rank in (1, 2, 3):
        for cin, batch, padding in itertools.product((1, 2), (1, 3), ("valid", "same")):
            sizes, steps = ((1, 2, 3), (1, 2, 3)) if rank < 3 else ((1, 3), (1, 2))
            for kernel in itertools.product(*[sizes] * rank):
                for strides in itertools.product(*[steps] * rank):
                    dilation = (1,) * rank if max(strides) > 1 else tuple(
                        int(rng.integers(1, 3)) for _ in range(rank))
                    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
                    size = tuple(int(rng.integers(e, e + 6)) for e in extent)
                    x = rng.standard_normal((batch,) + size + (cin,)).astype(np.float32)
                    w = rng.standard_normal(kernel + (cin, 3)).astype(np.float32)
                    yield x, w, strides, padding, dilation


def bad(y, want):
    err = np.abs(np.asarray(y, np.float64) - want).max() / max(np.abs(want).max(), 1e-12)
    return bool(not np.isfinite(err) or err > TOLERANCE), float(err)


def measure(seed):
    import keras
    from keras import ops as kops

    from keras_convx import ops as kc_ops

    rows = collections.Counter()
    raw_bad, ours_bad, total, examples = 0, 0, 0, []
    start = time.perf_counter()
    for x, w, strides, padding, dilation in cases(seed):
        lengths = x.shape[1:-1]
        pads = same_pads(lengths, w.shape[:-2], strides, dilation) if padding == "same" \
            else [(0, 0)] * len(lengths)
        want = oracle(x, w, strides, pads, dilation)
        total += 1
        try:
            raw = kops.convert_to_numpy(kops.conv(x, w, strides=strides, padding=padding,
                                                  dilation_rate=dilation))
            raw_wrong, raw_err = bad(raw, want)
        except Exception:  # TF refuses strides > 1 with dilation > 1: not a wrong number
            raw_wrong, raw_err = False, None
        ours_wrong, ours_err = bad(kops.convert_to_numpy(kc_ops.conv(
            x, w, strides=strides, padding=padding, dilation_rate=dilation)), want)
        if x.shape[-1] == 1:  # one channel: the depthwise path is a plain conv too
            wrong, err = bad(kops.convert_to_numpy(kc_ops.depthwise_conv(
                x, w, strides=strides, padding=padding, dilation_rate=dilation)), want)
            ours_wrong, ours_err = ours_wrong or wrong, max(ours_err, err)
        raw_bad += raw_wrong
        ours_bad += ours_wrong
        if raw_wrong or ours_wrong:
            key = (len(lengths), x.shape[-1], x.shape[0] > 1, padding,
                   "".join("s" if s > 1 else "1" for s in strides),
                   "".join("1" if o == 1 else "n" for o in want.shape[1:-1]))
            rows[key] += 1
            if len(examples) < 4:
                examples.append({"x": list(x.shape), "kernel": list(w.shape), "strides":
                                 list(strides), "padding": padding, "raw_error": raw_err,
                                 "ours_error": ours_err})
    return {"backend": keras.backend.backend(), "versions": versions(), "cpu": cpu(),
            "cases": total, "raw_bad": raw_bad, "ours_bad": ours_bad,
            "classes": [{"rank": k[0], "in_channels": k[1], "batch_gt_1": k[2],
                         "padding": k[3], "strided_axes": k[4], "output_length_1": k[5],
                         "count": n} for k, n in sorted(rows.items())],
            "examples": examples, "seconds": time.perf_counter() - start,
            "env": {k: os.environ[k] for k in ("TF_ENABLE_ONEDNN_OPTS",) if k in os.environ}}


def versions():
    import importlib.metadata as md

    out = {}
    for name in ("keras", "tensorflow-cpu", "torch", "jax", "jaxlib"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def cpu():
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        name = platform.processor()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {"model": name, "flags": [f for f in wanted if f in flags.split()]}


def render(results):
    lines = [f"## {SECTION}. Backend conv kernels against a float64 oracle (issue 33)", "",
             "Made by `KERAS_BACKEND=b python benchmarks/kernel_sweep.py --json "
             "benchmarks/runs/k-b.json` for each backend, then `--update-results "
             "benchmarks/runs/k-*.json`. Ranks 1-3, 1 or 2 input channels, batch 1 or 3, "
             "'valid' and 'same', every kernel (1-3) and stride (1-3) per axis (rank 3: kernels "
             "1 and 3, strides 1 and 2), dilation 1-2 "
             "where unstrided, sizes drawn per case. **raw**: `keras.ops.conv`, the backend's "
             "own kernel; **ours**: `keras_convx.ops.conv`, which every keras_convx conv "
             "layer calls, and for one channel `keras_convx.ops.depthwise_conv` too (bad if "
             "either is). Bad: max error > 1e-4 of the oracle's scale, or not finite.", "",
             "| backend | versions | cases | raw bad | keras_convx bad | s |",
             "|---|---|---:|---:|---:|---:|"]
    for r in results:
        v = ", ".join(f"{k} {x}" for k, x in r["versions"].items())
        lines.append(f"| {r['backend']}{' ' + str(r['env']) if r['env'] else ''} | {v} | "
                     f"{r['cases']} | {r['raw_bad']} | {r['ours_bad']} | {r['seconds']:.0f} |")
    lines += ["", "Bad raw cases by class (rank, input channels, batch > 1, padding, strided "
                  "axes, output axes of length 1):", ""]
    for r in results:
        for c in r["classes"]:
            lines.append(f"- {r['backend']}: rank {c['rank']}, {c['in_channels']} channel(s), "
                         f"batch {'> 1' if c['batch_gt_1'] else '1'}, {c['padding']}, strides "
                         f"`{c['strided_axes']}`, length-1 outputs `{c['output_length_1']}`: "
                         f"{c['count']}")
    cpu_info = results[0]["cpu"]
    lines += ["", f"CPU: {cpu_info['model']} ({', '.join(cpu_info['flags'])}). Every bad "
              "case has one input channel, a strided last spatial axis and an output of "
              "length 1 along it. keras_convx convolves such an axis at stride 1 over "
              "exactly its one window (a slice: no cost), and adds a zero second channel "
              "where the length is unknown (dynamic sizes) or 'same' padding makes it 1.",
              "", "Upstream-style report (the smallest case):", "",
              "```python",
              "import numpy as np, tensorflow as tf  # 2.21, oneDNN on (the default)",
              "x = np.random.default_rng(0).standard_normal((3, 11, 3, 1)).astype('float32')",
              "w = np.random.default_rng(1).standard_normal((3, 2, 1, 7)).astype('float32')",
              "y = tf.nn.conv2d(x, w, strides=(1, 2), padding='VALID')  # (3, 9, 1, 7)",
              "# wrong (1.2e38 here, varies per run); right with TF_ENABLE_ONEDNN_OPTS=0, under",
              "# XLA, with batch 1, or with a second input channel. torch 2.13 (also oneDNN):",
              "# F.conv2d(x_nchw, w_oihw, stride=(1, 2)) is wrong even on a fresh contiguous",
              "# NCHW copy (a one-channel tensor's strides read as channels-last too), right",
              "# with batch 1 or under torch.backends.mkldnn.flags(enabled=False)",
              "```"]
    return lines


def main(argv=None):
    result = sections.main(__doc__, SECTION, render, lambda args: measure(args.seed), argv,
                           [(("--seed",), {"type": int, "default": 0})])
    if result:
        print(json.dumps({k: result[k] for k in ("backend", "cases", "raw_bad", "ours_bad")}))


if __name__ == "__main__":
    main()
