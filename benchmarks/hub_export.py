"""keras-hub vision models (tests/hub_models.py: small random-weight configurations,
BatchNorm statistics as after training) through our native export, composite layers
traced through `call`, and through Keras's own `model.export(format="onnx")`, on the
current backend: exported?, verified?, the worst error as a fraction of the output scale,
export seconds, nodes, Transposes.

    KERAS_BACKEND=torch python benchmarks/hub_export.py --out h-torch.json [--models a,b]
    python benchmarks/hub_export.py --update-results h-tensorflow.json h-jax.json h-torch.json

The second form writes section 11 of benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from benchmarks.applications import _graph_stats  # noqa: E402
from benchmarks.sections import write_json  # noqa: E402


def _worst(report):
    """Worst output error / scale over the checks of a verification report."""
    rels = [c.rel for c in report.checks if c.role == "output" and c.rel == c.rel]
    return max(rels) if rels else None


def measure(names, keras_export=True, repeats=3):
    import keras
    import numpy as np

    import keras_convx as kc
    import hub_models as H
    from test_keras_hub import BATCH_AS_NUMBER

    work = tempfile.mkdtemp()
    kc.export_onnx(H.build("vgg"), os.path.join(work, "warm-up.onnx"), method="native")
    rows = []
    for name in names:
        model = H.build(name)
        options = {}  # a dynamic batch for every model
        row = {"model": name, "params": int(model.count_params()),
               "batch_symbol": name in BATCH_AS_NUMBER}
        path = os.path.join(work, f"{name}-ours.onnx")
        try:
            times = []
            for fresh in [model] + [H.build(name) for _ in range(repeats - 1)]:
                start = time.perf_counter()  # a fresh model each time: nothing cached
                report = kc.export_onnx(fresh, path, method="native", verify=False, **options)
                times.append(time.perf_counter() - start)
            row["ours_seconds"] = float(np.median(times))
            row["ours_ok"] = True
            row["ours_nodes"], row["ours_transposes"] = report.node_count, report.transpose_count
            verified = kc.verify_onnx(model, path)
            row["ours_verified"], row["ours_error_rel"] = verified.passed, _worst(verified)
            row["ours_tensors"] = sum(c.status == "pass" for c in verified.tensors)
        except Exception as err:  # a benchmark records failures, it doesn't stop on them
            row["ours_ok"] = False
            row["ours_error"] = f"{type(err).__name__}: {err}"[:300]
        if keras_export:
            path = os.path.join(work, f"{name}-keras.onnx")
            x = np.random.default_rng(0).uniform(0, 1, (1,) + tuple(model.inputs[0].shape[1:]))
            try:
                model(x.astype("float32"), training=False)  # Keras's exporter wants a call
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    model.export(path, format="onnx", verbose=False)
                    times.append(time.perf_counter() - start)
                row["keras_seconds"] = float(np.median(times))
                row["keras_ok"] = True
                row["keras_nodes"], row["keras_transposes"] = _graph_stats(path)
                try:
                    verified = kc.verify_onnx(model, path)
                    row["keras_verified"] = verified.passed
                    row["keras_error_rel"] = _worst(verified)
                except Exception as err:
                    row["keras_verified"] = False
                    row["keras_error"] = f"{type(err).__name__}: {err}"[:200]
            except Exception as err:
                row["keras_ok"] = False
                row["keras_error"] = f"{type(err).__name__}: {err}"[:200]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"backend": keras.backend.backend(), "rows": rows}


def _cell(row, key, fmt):
    value = row.get(key)
    return "-" if value is None else format(value, fmt)


def render(results):
    lines = ["## 11. keras-hub vision models: native export (composite layers traced) vs "
             "Keras's `model.export(format='onnx')`", "",
             "Made by `KERAS_BACKEND=<b> python benchmarks/hub_export.py --out h-<b>.json` per "
             "backend, then `python benchmarks/hub_export.py --update-results h-*.json`. The "
             "models of tests/hub_models.py (random weights, BatchNorm statistics as after "
             "training); every model exported with a dynamic batch; `*` = traced with the batch "
             "symbol (their embeddings compute with the batch size as a number; the graph "
             "computes those from its input's batch). 'verified' = `kc.verify_onnx` passes (ours: every "
             "mapped tensor, inside the traced blocks too; Keras's files: the outputs only). "
             "Error = worst output error / output scale. Export seconds without verification, "
             "median of 3 (ours: a fresh model each time, so nothing is cached), after one "
             "warm-up export.",
             "", "| backend | model | ours: ok / verified | Keras: ok / verified | error (ours / "
             "Keras) | export s (ours / Keras) | Keras / ours | nodes (ours / Keras) | "
             "Transposes (ours / Keras) |", "|---|---|---|---|---|---|---:|---|---|"]

    def ok(row, side):
        if f"{side}_ok" not in row:
            return "not run"
        if not row[f"{side}_ok"]:
            return "no"
        return "yes / " + ("yes" if row.get(f"{side}_verified") else "**no**")

    summary = []
    for res in results:
        ours = keras_ = 0
        for row in res["rows"]:
            ours += bool(row.get("ours_ok") and row.get("ours_verified"))
            keras_ += bool(row.get("keras_ok") and row.get("keras_verified"))
            ratio = (row["keras_seconds"] / row["ours_seconds"]
                     if row.get("keras_seconds") and row.get("ours_seconds") else None)
            lines.append(
                f"| {res['backend']} | {row['model']}{'*' if row.get('batch_symbol') else ''} "
                f"| {ok(row, 'ours')} | {ok(row, 'keras')} | "
                f"{_cell(row, 'ours_error_rel', '.1e')} / {_cell(row, 'keras_error_rel', '.1e')}"
                f" | {_cell(row, 'ours_seconds', '.2f')} / {_cell(row, 'keras_seconds', '.2f')} "
                f"| {'-' if ratio is None else f'{ratio:.0f}x'} | "
                f"{_cell(row, 'ours_nodes', 'd')} / {_cell(row, 'keras_nodes', 'd')} | "
                f"{_cell(row, 'ours_transposes', 'd')} / {_cell(row, 'keras_transposes', 'd')} |")
        ran = any("keras_ok" in row for row in res["rows"])
        summary.append(f"| {res['backend']} | {ours}/{len(res['rows'])} | "
                       + (f"{keras_}/{len(res['rows'])} |" if ran else "not run |"))
    lines += ["", "Exported and verified:", "", "| backend | ours | Keras's export |",
              "|---|---:|---:|"] + summary
    grouped = {}  # (backend, side, message) -> models
    for res in results:
        for r in res["rows"]:
            for side in ("ours", "keras"):
                if r.get(f"{side}_error"):
                    text = re.sub(r"\x1b\[[0-9;]*m", "", r[f"{side}_error"])
                    text = " ".join(text.split())[:220]
                    grouped.setdefault((res["backend"], side, text), []).append(r["model"])
    if grouped:
        lines += ["", "What went wrong (ours: refused by name; Keras's: as it failed):", ""]
        lines += [f"- {b}, {'ours' if side == 'ours' else 'Keras'}, {len(models)} model(s) "
                  f"({', '.join(models)}): {text}"
                  for (b, side, text), models in grouped.items()]
    return lines


README = os.path.join(ROOT, "README.md")
MARKERS = ("<!-- keras-hub coverage: start -->", "<!-- keras-hub coverage: end -->")


def coverage_table(names):
    """The README's coverage table: every class the models' traces reach, how it exports,
    and in how many of the models it appears."""
    import keras_convx as kc
    import hub_models as H
    from test_keras_hub import REFUSED

    seen = {}
    for name in names:
        model = H.build(name)
        batch = 1 if name in REFUSED else None
        for row in kc.exporter.coverage(model, batch):
            seen.setdefault((row.kind, row.how), set()).add(name)
    lines = ["| class | exported by | models |", "|---|---|---:|"]
    order = {"missing": 0, "traced": 1, "lowering": 2}
    for (kind, how), models in sorted(seen.items(), key=lambda kv: (order[kv[0][1]], kv[0][0])):
        lines.append(f"| `{short_kind(kind)}` | {how} | {len(models)} |")
    return lines


def readme_rows():
    """{(class, how)} of the coverage table in README.md."""
    with open(README) as f:
        text = f.read()
    body = text.split(MARKERS[0])[1].split(MARKERS[1])[0]
    return {tuple(cell.strip().strip("`") for cell in line.split("|")[1:3])
            for line in body.splitlines() if line.startswith("| `")}


def short_kind(kind):
    return kind.replace("keras_hub.src.models.", "keras_hub.").replace("keras.src.", "keras.")


def update_readme(lines):
    with open(README) as f:
        text = f.read()
    head, rest = text.split(MARKERS[0])
    _, tail = rest.split(MARKERS[1])
    with open(README, "w") as f:
        f.write(head + MARKERS[0] + "\n" + "\n".join(lines) + "\n" + MARKERS[1] + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write this backend's measurements as JSON")
    parser.add_argument("--models", help="comma-separated names (default: all)")
    parser.add_argument("--ours-only", action="store_true", help="skip Keras's exporter")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--update-results", nargs="+", metavar="JSON")
    parser.add_argument("--coverage-readme", action="store_true",
                        help="rewrite README.md's keras-hub coverage table and stop")
    args = parser.parse_args(argv)
    if args.update_results:
        from benchmarks.sections import update

        update(11, render, args.update_results)
        return 0
    import hub_models as H

    names = args.models.split(",") if args.models else list(H.FAMILIES)
    if args.coverage_readme:
        update_readme(coverage_table(names))
        return 0
    result = measure(names, not args.ours_only, args.repeats)
    print(json.dumps(result, indent=1)) if not args.out else write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
