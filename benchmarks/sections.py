"""Writing one numbered section of benchmarks/RESULTS.md from per-backend JSON results,
leaving the others as they are (each benchmark script owns its section)."""

import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "RESULTS.md")


def section_pattern(number):
    return re.compile(rf"## {number}\. .*?(?=\n## |\Z)", re.S)


def update(number, render, paths, target=RESULTS):
    """Replaces section `number` (or inserts it before the notes) with `render(results)`."""
    results = []
    for path in paths:
        with open(path) as f:
            results.append(json.load(f))
    with open(target) as f:
        text = f.read()
    section = "\n".join(render(results)).rstrip("\n")
    pattern = section_pattern(number)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)  # the blank line before the next
    elif "## Notes" in text:
        text = text.replace("## Notes", section + "\n\n## Notes")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(target, "w") as f:
        f.write(text)


def add_result_arguments(parser, number):
    """`--json FILE` (write the measurements) and `--update-results FILE` (write section
    `number` of RESULTS.md from such a file), for one-run benchmark scripts."""
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument("--update-results", metavar="JSON",
                        help=f"write RESULTS.md section {number} from a --json file and stop")


def write_json(path, result):
    if path:
        with open(path, "w") as f:
            json.dump(result, f)


def main(doc, number, render, measure, argv=None, options=()):
    """The command line of a benchmark whose results may come from several runs (one per
    backend): `--json FILE` writes `measure(args)`, `--update-results FILE...` writes
    section `number` from such files. `options`: extra (args, kwargs) for add_argument."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for args, kwargs in options:
        parser.add_argument(*args, **kwargs)
    parser.add_argument("--json", help="write the measurements to this file")
    parser.add_argument("--update-results", nargs="+", metavar="JSON",
                        help=f"write RESULTS.md section {number} from --json files and stop")
    args = parser.parse_args(argv)
    if args.update_results:
        update(number, render, args.update_results)
        return None
    result = measure(args)
    write_json(args.json, result)
    return result
