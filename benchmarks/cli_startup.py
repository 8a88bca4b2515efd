"""Start-up time of the `keras-convx` command: `--help` and each subcommand's `--help`,
per Keras backend (median of repeats, fresh process each). RESULTS.md section 8.

    python benchmarks/cli_startup.py --json c.json [--repeats 7]
    python benchmarks/cli_startup.py --update-results c.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.sections import add_result_arguments, update, write_json  # noqa: E402
COMMANDS = [["--help"], ["export", "--help"], ["verify", "--help"], ["build", "--help"],
            ["schema", "--help"]]


def measure(repeats):
    script = os.path.join(os.path.dirname(sys.executable), "keras-convx")
    rows = []
    for backend in ("tensorflow", "jax", "torch"):
        env = dict(os.environ, KERAS_BACKEND=backend)
        for argv in COMMANDS:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                subprocess.run([script] + argv, env=env, capture_output=True, check=True)
                times.append(time.perf_counter() - start)
            rows.append({"backend": backend, "command": " ".join(["keras-convx"] + argv),
                         "seconds": statistics.median(times)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"rows": rows}


def render(results):
    rows = results[0]["rows"]
    commands = list(dict.fromkeys(r["command"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    lines = ["## 8. Command-line start-up", "",
             "Made by `python benchmarks/cli_startup.py --json c.json` then `--update-results "
             "c.json`: wall time of a fresh `keras-convx` process, median of 7. Before the "
             "lazy start (Keras imported before parsing) `--help` took 4.5 s on TensorFlow and "
             "5.3 s on torch.", "",
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
