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
        text = pattern.sub(lambda _: section, text)
    elif "## Notes" in text:
        text = text.replace("## Notes", section + "\n\n## Notes")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(target, "w") as f:
        f.write(text)
