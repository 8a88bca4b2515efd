"""keras_convx.testing and its pytest plugin, as a user's own test suite uses them."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_convx as kc
from keras_convx import exporter
from keras_convx.testing import assert_export_parity, assert_layer_contract
from helpers import BACKEND, rand


def _model():
    inputs = keras.Input((8, 8, 3), name="x")
    h = kc.Conv2D(4, 3, padding="same", name="first")(inputs)
    h = kc.Conv2D(4, 3, strides=2, name="broken")(h)
    model = keras.Model(inputs, kc.Conv2D(2, 1, name="last")(h))
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i))
    return model


def test_export_parity_passes_and_names_the_first_diverging_layer(monkeypatch):
    model = _model()
    report = assert_export_parity(model, rand((3, 8, 8, 3), 7), levels=("disable", "all"))
    assert report.passed and 0 < report.required_tolerance < 1e-4
    real = exporter.LOWERINGS[kc.Conv2D]

    def wrong(b, layer, ctx):  # an off-by-a-constant bug in one layer's lowering
        y = real.fn(b, layer, ctx)
        return b.node("Add", [y, b.const(np.float32(0.5), "bug")]) if layer.name == "broken" \
            else y

    monkeypatch.setitem(exporter.LOWERINGS, kc.Conv2D, dataclasses.replace(real, fn=wrong))
    with pytest.raises(AssertionError, match=r"first diverging layer: broken .*required "
                                             r"tolerance \d"):
        assert_export_parity(model)


def test_export_parity_fails_on_nan_and_on_a_model_that_does_not_export():
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, keras.ops.sqrt(kc.Conv2D(3, 3)(inputs)))
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i))
    with pytest.raises(AssertionError, match="NaN/Inf.*no tolerance passes"):
        assert_export_parity(model)

    class Cumulative(keras.layers.Layer):
        def call(self, x):
            return keras.ops.cumsum(x, axis=1)

    model = keras.Model(inputs, Cumulative()(inputs))
    with pytest.raises(AssertionError, match="does not export.*Cumsum"):
        assert_export_parity(model)


@keras.saving.register_keras_serializable("test_testing_api")
class Scaled(keras.layers.Layer):
    """A user's layer: its config keeps `scale` (Lossy below forgets it)."""

    def __init__(self, units, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale = units, scale
        self.dense = keras.layers.Dense(units, dtype=self.dtype_policy)

    def build(self, shape):
        self.dense.build(shape)

    def call(self, x):
        return self.dense(x) * self.scale

    def compute_output_shape(self, shape):
        return tuple(shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "scale": self.scale}


@keras.saving.register_keras_serializable("test_testing_api")
class Lossy(Scaled):
    def get_config(self):
        config = super().get_config()
        del config["scale"]
        return config


class NoShape(keras.layers.Layer):
    """A user's layer without `compute_output_shape`, which Keras does not require."""

    def call(self, x):
        return keras.ops.concatenate([x, -x], axis=-1)


def test_layer_contract_holds_for_ours_and_a_users_layer_and_catches_a_lost_argument():
    assert_layer_contract(kc.Conv2D, dict(filters=4, kernel_size=3, padding="same",
                                          activation="relu"), (2, 8, 8, 3),
                          expected_output_shape=(2, 8, 8, 4))
    assert_layer_contract(Scaled, dict(units=3, scale=2.0), (2, 5, 4))
    assert_layer_contract(NoShape, {}, (2, 5, 4), expected_output_shape=(2, 5, 8), save=False,
                          export=False)
    with pytest.raises(AssertionError, match=r"Lossy.get_config\(\) loses the argument "
                                             r"'scale'"):
        assert_layer_contract(Lossy, dict(units=3, scale=2.0), (2, 5, 4))


# The README's own test file runs every backend through the plugin (tests/test_docs.py);
# this one checks what that can't show: a failure in a child process, reported under its id.
USER_TESTS = '''
import keras
import pytest


@pytest.mark.keras_backends("jax", "torch")
def test_backend_and_rng(keras_backend, keras_rng):
    assert keras.backend.backend() == keras_backend
    print("first", keras_rng.standard_normal())  # the same on every backend
    assert keras_backend != "jax", "a failure the jax process reports"
'''


@pytest.mark.skipif(BACKEND != "torch", reason="runs other backends itself, each in its own "
                    "process: once per suite")
def test_plugin_reports_a_failure_in_a_child_process_under_its_id(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_BACKEND"] = "torch"  # the parent process's own backend
    done = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                           "test_user.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # the one failure the user wrote
    assert "test_backend_and_rng[torch] PASSED" in out, out
    assert "test_backend_and_rng[jax] FAILED" in out, out
    # the child's own report, with the backend named
    assert "[jax] failed in its own process" in out and "a failure the jax process" in out
    assert "1 failed, 1 passed" in out, out
    # the plugin named with -p, entry points off (as in many CIs): the child loads it too
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    done = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                           "-p", "keras_convx.pytest_plugin", "test_user.py"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert "not found" not in out and "1 failed, 1 passed" in out, out
    assert "a failure the jax process" in out, out
