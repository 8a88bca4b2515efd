import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")

BACKEND = keras.backend.backend()


def pytest_report_header(config):
    return f"keras backend: {BACKEND} (keras {keras.__version__})"

import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))  # tests import oracle/helpers as modules

# JAX compiles every op for every new shape in eager mode, so its run of the big parameter
# grids keeps a deterministic share of each: `@pytest.mark.thin_on_jax(n)` on a test keeps
# one case in n there, which one rotating by day (the UTC date's ordinal), so n days cover
# the grid; TF and torch run them whole (each use says why it may). KC_THIN_OFFSET=k
# picks the share of day k (to rerun a failure from another day).


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "thin_on_jax(n): on the JAX backend, keep one parametrized case in n")


def pytest_collection_modifyitems(config, items):
    if BACKEND != "jax":
        return
    import datetime

    offset = int(os.environ.get("KC_THIN_OFFSET",
                                datetime.datetime.now(datetime.timezone.utc).date().toordinal()))
    counters, keep, drop = {}, [], []
    for item in items:
        marker = item.get_closest_marker("thin_on_jax")
        if marker is None:
            keep.append(item)
            continue
        n = marker.args[0]
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"thin_on_jax: n must be a positive int, got {n!r} on {item.nodeid}")
        key = (item.module.__name__, getattr(item, "originalname", item.name))
        counters[key] = counters.get(key, 0) + 1
        (keep if (counters[key] + offset) % n == 0 else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
