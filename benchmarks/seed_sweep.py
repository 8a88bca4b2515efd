"""False alarms (issue 33): the README's verifications that assert `passed`, repeated over
seeds on correct exports. Every run here exports a correct graph, so every failure is a
false alarm of a rule. RESULTS.md section 19.

    KERAS_BACKEND=b python benchmarks/seed_sweep.py --json benchmarks/runs/s-b.json [--seeds 50]
    python benchmarks/seed_sweep.py --update-results benchmarks/runs/s-*.json

Per seed: the README's net (Rescaling, two strided/plain convs, pooling, Dense) with
weights drawn from the seed and data uniform in [0, 255), exported in float32 (the float
rule); the same net after `model.quantize("int8")`, exported with the seed's samples (the
float rule with its int8 rounding-flip allowance); and, on every fifth seed, its static
INT8 export calibrated on the seed's data (the quantized rule).
"""

import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import sections  # noqa: E402

SECTION = 19
RULES = ("float32 (float rule)", "model.quantize int8 (flip allowance)",
         "static INT8 (quantized rule)")


def readme_net(seed):
    import keras

    import keras_convx as kc

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = kc.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = kc.Conv2D(32, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)))


def one_seed(seed, folder):
    import keras

    import keras_convx as kc

    data = np.random.default_rng(seed).uniform(0, 255, (40, 32, 32, 3)).astype("float32")
    net = readme_net(seed)
    out = {}

    def attempt(rule, export):
        try:
            report = export()
            out[rule] = {"passed": bool(report.passed), "reason": ""}
        except kc.VerificationFailed as err:
            out[rule] = {"passed": False, "reason": str(err).splitlines()[0][:300]}

    attempt(RULES[0], lambda: kc.export_onnx(net, os.path.join(folder, "f.onnx"),
                                             verify=kc.VerifyOptions(samples=[[data[:4]]])))
    net8 = keras.models.clone_model(net)
    net8.set_weights(net.get_weights())
    net8.quantize("int8")
    attempt(RULES[1], lambda: kc.export_onnx(net8, os.path.join(folder, "q.onnx"),
                                             verify=kc.VerifyOptions(samples=[[data[:4]]])))
    if seed % 5 == 0:
        attempt(RULES[2], lambda: kc.export_onnx(net, os.path.join(folder, "s.onnx"),
                                                 precision="int8", calibration=data))
    return out


def measure(seeds):
    import keras

    runs, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(seeds):
            runs.append({"seed": seed, **one_seed(seed, folder)})
            bad = [r for r in RULES if r in runs[-1] and not runs[-1][r]["passed"]]
            print(json.dumps({"seed": seed, "false_alarms": bad}), file=sys.stderr, flush=True)
    return {"backend": keras.backend.backend(), "seeds": seeds, "runs": runs,
            "seconds": time.perf_counter() - start}


def render(results):
    lines = [f"## {SECTION}. False alarms: correct exports verified over seeds (issue 33)", "",
             "Made by `KERAS_BACKEND=b python benchmarks/seed_sweep.py --json "
             "benchmarks/runs/s-b.json` per backend, then `--update-results "
             "benchmarks/runs/s-*.json`. The README's INT8 net with weights and data drawn "
             "per seed: every export is correct, so every failure is a false alarm.", "",
             "| backend | rule | runs | false alarms |", "|---|---|---:|---:|"]
    reasons = []
    for r in results:
        for rule in RULES:
            rows = [run[rule] for run in r["runs"] if rule in run]
            bad = [x for x in rows if not x["passed"]]
            lines.append(f"| {r['backend']} | {rule} | {len(rows)} | {len(bad)} |")
            reasons += [f"- {r['backend']}, {rule}: {x['reason']}" for x in bad[:3]]
    if reasons:
        lines += ["", "False alarms, first line of each (at most 3 per rule):", ""] + reasons
    return lines


def main(argv=None):
    sections.main(__doc__, SECTION, render, lambda args: measure(args.seeds), argv,
                  [(("--seeds",), {"type": int, "default": 50})])


if __name__ == "__main__":
    main()
