"""Start-up time of the `keras-convx` command: `--help`, each subcommand's `--help`, and
`validate` of a zoo config with and without a typo, per Keras backend (median of repeats,
fresh process each). RESULTS.md section 8.

    python benchmarks/cli_startup.py --json c.json [--repeats 7]
    python benchmarks/cli_startup.py --update-results c.json
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
sys.path.insert(0, ROOT)

from benchmarks.sections import add_result_arguments, update, write_json  # noqa: E402
COMMANDS = [["--help"], ["export", "--help"], ["verify", "--help"], ["build", "--help"],
            ["schema", "--help"], ["validate", "configs/wavenet.yaml", "--scale", "t"],
            ["validate", "<wavenet.yaml with kernel_sise>"]]


def measure(repeats):
    script = os.path.join(os.path.dirname(sys.executable), "keras-convx")
    rows = []
    with open(os.path.join(ROOT, "configs", "wavenet.yaml")) as f:
        typo = f.read().replace("kernel_size:", "kernel_sise:")
    folder = tempfile.mkdtemp()
    typo_path = os.path.join(folder, "typo.yaml")
    with open(typo_path, "w") as f:
        f.write(typo)
    for backend in ("tensorflow", "jax", "torch"):
        env = dict(os.environ, KERAS_BACKEND=backend)
        for argv in COMMANDS:
            times = []
            real = [typo_path if a.startswith("<") else a for a in argv]
            for _ in range(repeats):
                start = time.perf_counter()
                done = subprocess.run([script] + real, env=env, capture_output=True, cwd=ROOT)
                if done.returncode != (2 if real != argv else 0):
                    raise SystemExit(f"{' '.join(real)}: exit {done.returncode}\n"
                                     f"{done.stderr.decode()}")
                times.append(time.perf_counter() - start)
            rows.append({"backend": backend, "command": " ".join(["keras-convx"] + argv),
                         "seconds": statistics.median(times)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"rows": rows, "repeats": repeats}


def render(results):
    rows = results[0]["rows"]
    commands = list(dict.fromkeys(r["command"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    lines = ["## 8. Command-line start-up", "",
             "Made by `python benchmarks/cli_startup.py --json c.json` then `--update-results "
             f"c.json`: wall time of a fresh `keras-convx` process, median of "
             f"{results[0].get('repeats', 7)}. Before the "
             "lazy start (Keras imported before parsing) `--help` took 4.5 s on TensorFlow and "
             "5.3 s on torch. A config with a typo is reported before any backend is imported "
             "(`keras_convx.model_config.precheck`); a valid one is built, so it pays the "
             "backend's import.", "",
             "| command | " + " | ".join(f"{b} s" for b in backends) + " |",
             "|---|" + "---:|" * len(backends)]
    for c in commands:
        cells = [next(r["seconds"] for r in rows if r["command"] == c and r["backend"] == b)
                 for b in backends]
        lines.append(f"| `{c}` | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    add_result_arguments(parser, 8)
    args = parser.parse_args(argv)
    if args.update_results:
        update(8, render, [args.update_results])
        return
    write_json(args.json, measure(args.repeats))


if __name__ == "__main__":
    main()
