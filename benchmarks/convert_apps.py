"""Every keras.applications constructor moved onto keras_convx and back, on the current
backend: `kc.convert(model)`, `kc.convert(converted, to="keras")`, and `kc.to_yaml` ->
`kc.build_model` with the weights moved over by layer name; each must give outputs equal,
bit for bit, to the original's (weights=None, the smallest input each family takes,
BatchNorm statistics as after training). RESULTS.md section 9.

    KERAS_BACKEND=jax python benchmarks/convert_apps.py --json c-jax.json [--models A B]
    python benchmarks/convert_apps.py --update-results c-tensorflow.json c-jax.json c-torch.json

Two application layers are outside the config allowlist and neither a `keras.layers` class
nor convertible: ConvNeXt's `LayerScale` and InceptionResNetV2's `CustomScaleLayer`. The
YAML round trip registers them with `kc.register_layer`, as a user would.
"""

import argparse
import gc
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from benchmarks.sections import add_result_arguments, update, write_json  # noqa: E402

SECTION = 9
STEPS = ("convert", "back", "yaml")
# keras.applications' own layer classes a config can use only once registered
APPLICATION_LAYERS = ("keras.src.applications.convnext.LayerScale",
                      "keras.src.applications.inception_resnet_v2.CustomScaleLayer")


def _register_application_layers():
    import importlib

    import keras_convx as kc

    for path in APPLICATION_LAYERS:
        module, name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        if kc.model_config.builder.layer_types().get(name) is not cls:
            kc.register_layer(cls)


def check(name):
    """{step: {"ok", "seconds", "max_diff"}} for one application (raises nothing)."""
    import keras
    import numpy as np

    import keras_convx as kc
    from keras_convx.conversion import copy_weights
    from test_applications import build

    model = build(name)
    x = np.random.default_rng(0).uniform(0, 255, (2,) + tuple(model.inputs[0].shape[1:]))
    x = x.astype("float32")
    want = keras.ops.convert_to_numpy(model(x, training=False))
    row = {"params": model.count_params(), "size": int(model.inputs[0].shape[1])}

    def compare(step, make):
        start = time.perf_counter()
        try:
            other = make()
            seconds = time.perf_counter() - start
            got = keras.ops.convert_to_numpy(other(x, training=False))
            diff = float(np.max(np.abs(got.astype(np.float64) - want)))
            row[step] = {"ok": bool(np.array_equal(got, want)), "seconds": seconds,
                         "max_diff": diff}
            return other
        except Exception as err:  # recorded: the table says which step failed and why
            row[step] = {"ok": False, "error": f"{type(err).__name__}: "
                                               f"{str(err).splitlines()[0][:160]}"}
            return None

    def yaml_round_trip():
        text = kc.to_yaml(model)
        rebuilt = kc.build_model(text)
        copy_weights(model, rebuilt)
        row["yaml_lines"] = len(text.splitlines())
        return rebuilt

    converted = compare("convert", lambda: kc.convert(model))
    if converted is not None:
        compare("back", lambda: kc.convert(converted, to="keras"))
    else:
        row["back"] = {"ok": False, "error": "not run (convert failed)"}
    compare("yaml", yaml_round_trip)
    return row


def measure(names, path=None):
    """Runs `names` on this backend; with `path`, rewrites that JSON file after every model
    (a run cut short keeps what it measured)."""
    import json

    import keras

    _register_application_layers()
    rows = []
    result = {"backend": keras.backend.backend(), "keras": keras.__version__, "rows": rows}
    for name in names:
        if keras.backend.backend() == "torch" and name.startswith("NASNet"):
            rows.append({"model": name, "refused": "Keras 3.15 refuses NASNet on torch"})
            write_json(path, result)
            continue
        start = time.perf_counter()
        row = {"model": name, **check(name)}
        row["total_seconds"] = time.perf_counter() - start
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        write_json(path, result)
        keras.backend.clear_session()
        gc.collect()
    return result


def _cell(row):
    if "refused" in row:
        return "n/a (Keras refuses)"
    failed = [s for s in STEPS if not row[s]["ok"]]
    times = " / ".join(f"{row[s]['seconds']:.1f}" if "seconds" in row[s] else "-"
                       for s in STEPS)
    if not failed:
        return f"pass {times}"
    why = "; ".join(f"{s}: " + (row[s].get("error") or f"max diff {row[s]['max_diff']:.2g}")
                    for s in failed)
    return f"**FAIL** {times} ({why})"


def _yaml_sentence(results):
    lines = {row["model"]: row["yaml_lines"] for r in results for row in r["rows"]
             if "yaml_lines" in row}
    if not lines:
        return ""
    small, large = min(lines, key=lines.get), max(lines, key=lines.get)
    return (f"YAML: one entry per layer, arguments at their defaults left out, `inputs` only "
            f"where a layer doesn't take the previous one's output; repeated structure is not "
            f"folded into `repeat` or blocks ({lines[small]} lines for {small} to "
            f"{lines[large]} for {large}).")


def render(results):
    backends = [r["backend"] for r in results]
    names = list(dict.fromkeys(row["model"] for r in results for row in r["rows"]))
    by = {(r["backend"], row["model"]): row for r in results for row in r["rows"]}
    passed = {b: sum(1 for n in names if (b, n) in by and "refused" not in by[b, n]
                     and all(by[b, n][s]["ok"] for s in STEPS)) for b in backends}
    ran = {b: sum(1 for n in names if (b, n) in by and "refused" not in by[b, n])
           for b in backends}
    lines = [f"## {SECTION}. keras.applications onto keras_convx and back", "",
             "Made by `KERAS_BACKEND=<b> python benchmarks/convert_apps.py --json "
             "benchmarks/runs/c-<b>.json` per backend, then `--update-results` with the "
             "files. Each of the 40 constructors (Keras " + results[0]["keras"] + ", "
             "weights=None, batch 2 of the smallest input the family takes, BatchNorm "
             "statistics as after training): `kc.convert(model)`, then "
             "`kc.convert(converted, to=\"keras\")`, then `kc.to_yaml(model)` -> "
             "`kc.build_model` -> weights copied by layer name. Pass = all three give "
             "outputs equal to the original's bit for bit (`np.array_equal`). Times: "
             "seconds for each step (conversion or YAML + build + weight copy, not the "
             "forward pass). ConvNeXt's `LayerScale` and InceptionResNetV2's "
             "`CustomScaleLayer` are registered with `kc.register_layer` for the YAML "
             "(application layers outside the allowlist).", "",
             "Passed: " + ", ".join(f"{b} {passed[b]}/{ran[b]}" for b in backends) + " (of "
             "the constructors each backend ran; `not run`: a run given fewer with `--models`, "
             "or cut short). Times are from a shared 2-core machine with other jobs running: "
             "they vary by 2x between runs.", "",
             _yaml_sentence(results), ""] + [
                 f"{r['backend']} ran {len(r['rows'])} of the {len(names)}: a `--models` run "
                 f"(here the smallest constructor of each family, for time)."
                 for r in results if len(r["rows"]) < len(names)] + ["",
             "| model | params | input | " + " | ".join(
                 f"{b}: convert / back / YAML s" for b in backends) + " |",
             "|---|---:|---:|" + "---|" * len(backends)]
    for n in names:
        known = next(by[b, n] for b in backends if (b, n) in by and "params" in by[b, n]) \
            if any((b, n) in by and "params" in by[b, n] for b in backends) else {}
        params = f"{known['params'] / 1e6:.1f}M" if known else "-"
        size = f"{known['size']}" if known else "-"
        cells = [_cell(by[b, n]) if (b, n) in by else "not run" for b in backends]
        lines.append(f"| {n} | {params} | {size} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="constructor names (default: all 40)")
    add_result_arguments(parser, SECTION)
    parser.add_argument("paths", nargs="*", help="more --json files for --update-results "
                        "(one per backend)")
    args = parser.parse_args(argv)
    if args.update_results:
        update(SECTION, render, [args.update_results] + list(args.paths or []))
        return
    from test_applications import APPLICATIONS

    write_json(args.json, measure(args.models or APPLICATIONS, args.json))


if __name__ == "__main__":
    main()
