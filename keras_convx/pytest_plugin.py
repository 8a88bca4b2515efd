"""pytest plugin: run a test once per Keras backend, each backend in its own process.

Keras fixes its backend when it is first imported, so one process can't test three. A test
marked `@pytest.mark.keras_backends("tensorflow", "jax", "torch")` becomes one test per
backend, with ids `[tensorflow]`, `[jax]`, `[torch]`. The one for the backend this
pytest process already runs on runs here; each other one runs in a child pytest process
with `KERAS_BACKEND` set, and its result is reported here. A backend that is not
installed is skipped, saying so.

Fixtures: `keras_backend` (the backend's name, as `keras.backend.backend()` reports it
inside the test) and `keras_rng` (a NumPy Generator seeded from the test's id, the same on
every run and every backend).

Loaded by pytest through the `pytest11` entry point of the keras-convx package.
"""

import importlib.util
import os
import subprocess
import sys
import zlib

import pytest

BACKENDS = ("tensorflow", "jax", "torch")
_CHILD = "KERAS_CONVX_BACKEND_CHILD"  # set in a child process: the backend it runs


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "keras_backends(*names): run the test once per Keras backend "
                   "(tensorflow, jax, torch), each in its own process")


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("keras_backends")
    if marker is None:
        return
    names = list(marker.args) or list(BACKENDS)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise pytest.UsageError(f"keras_backends: unknown backend(s) {unknown}; accepted: "
                                f"{', '.join(BACKENDS)}")
    if "keras_backend" not in metafunc.fixturenames:
        metafunc.fixturenames.append("keras_backend")
    metafunc.parametrize("keras_backend", names, ids=names, indirect=True)


def _current_backend():
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND") or _configured_backend()


def _configured_backend():
    import json

    path = os.path.join(os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras"),
                        "keras.json")
    try:
        with open(path) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


@pytest.fixture
def keras_backend(request):
    """The Keras backend the test runs on (parametrized by `keras_backends`)."""
    return getattr(request, "param", None) or _current_backend()


@pytest.fixture
def keras_rng(request):
    """A NumPy Generator seeded from the test's id: the same data on every backend."""
    import numpy as np

    base = request.node.nodeid.split("[")[0]
    return np.random.default_rng(zlib.crc32(base.encode()))


def _installed(backend):
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return importlib.util.find_spec(module) is not None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    callspec = getattr(pyfuncitem, "callspec", None)
    backend = callspec.params.get("keras_backend") if callspec is not None else None
    if backend is None or pyfuncitem.get_closest_marker("keras_backends") is None:
        return None
    child = os.environ.get(_CHILD)
    if child:
        if child != backend:
            pytest.skip(f"runs in the {backend} process")
        return None  # the child's own backend: run here
    if not _installed(backend):
        pytest.skip(f"backend {backend!r} is not installed")
    if backend == _current_backend():
        return None
    _run_in_child(pyfuncitem, backend)
    return True


def _run_in_child(item, backend):
    env = dict(os.environ, KERAS_BACKEND=backend, **{_CHILD: backend})
    root = str(item.config.rootpath)
    command = [sys.executable, "-m", "pytest", item.nodeid, "-q", "-rA", "--no-header",
               "-p", "no:cacheprovider", "--rootdir", root]
    # the child loads this plugin as the parent did: by its entry point (autoload), or, when
    # the parent had it from `-p` or a conftest (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 is common
    # in CI and inherited), by name too (a conftest registers the same name: no double)
    if item.config.pluginmanager.get_name(sys.modules[__name__]) != "keras_convx":
        command[4:4] = ["-p", __name__]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    if done.returncode == 0:
        if "1 skipped" in output and "1 passed" not in output:
            pytest.skip(f"[{backend}] skipped in its own process: {_last_lines(output, 3)}")
        return
    pytest.fail(f"[{backend}] failed in its own process (KERAS_BACKEND={backend}):\n"
                f"{_last_lines(output, 40)}", pytrace=False)


def _last_lines(text, n):
    return "\n".join(text.splitlines()[-n:])
