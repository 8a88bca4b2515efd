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

# JAX compiles every op for every new shape in eager mode, so its run of the big
# parameter grids keeps a deterministic quarter of each (TF and torch run them whole;
# the layers are backend-agnostic code on keras.ops, and the lowering grid does not
# depend on the backend at all).
THINNED_ON_JAX = {  # test name -> keep one case in N
    # a quarter since the verification and keras.applications modules joined the suite
    "test_matches_keras_layer": 4, "test_matches_numpy_oracle": 4,
    "test_depthwise_separable_match_oracle": 4, "test_transpose_matches_oracle": 4,
    "test_upsampling_matches_oracle": 4,
    # the lowering reads weights only: the graph doesn't depend on the backend (and
    # test_native_export_equal_across_backends exports from JAX and torch directly)
    "test_single_layer_native_export": 6,
    # the new lowerings: both layouts run on TF and torch; JAX keeps every other case
    "test_lowering_verifies": 2,
    # the zoo's build/run/round-trip/export is backend-agnostic code: half of it on JAX
    "test_zoo_config_builds_runs_round_trips_and_exports": 2,
}


def pytest_collection_modifyitems(config, items):
    if BACKEND != "jax":
        return
    counters, keep, drop = {}, [], []
    for item in items:
        name = getattr(item, "originalname", item.name)
        if name in THINNED_ON_JAX:
            key = (item.module.__name__, name)
            counters[key] = counters.get(key, 0) + 1
            (keep if counters[key] % THINNED_ON_JAX[name] == 1 else drop).append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
