"""`.keras` save/load in a fresh process, registration and aliases (the per-layer config
round trip is in the layer contract, tests/contract.py)."""

import os
import subprocess
import sys

import keras
import numpy as np

import keras_convx as kc
from helpers import BACKEND, rand
from layer_cases import CASES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_crop_to_match_config_round_trip():
    layer = kc.CropToMatch(anchor="end", data_format="channels_first")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is kc.CropToMatch and clone.get_config() == layer.get_config()


def _model():
    inputs, outputs = [], []
    for case in CASES:
        x = keras.Input(case.shape, name=case.name.replace("-", "_") + "_input")
        inputs.append(x)
        outputs.append(case.make()(x))
    return keras.Model(inputs, outputs)


def test_keras_file_reloads_bit_identical_in_fresh_process(tmp_path):
    model = _model()
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rand(w.shape, i) for i, w in enumerate(layer.get_weights())])
    data = [rand((2,) + case.shape, 7) for case in CASES]
    outputs = [keras.ops.convert_to_numpy(y) for y in model(data)]
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "io.npz", *data, *outputs)
    script = f"""
import numpy as np, keras, keras_convx
model = keras.saving.load_model({str(tmp_path / 'm.keras')!r})
io = np.load({str(tmp_path / 'io.npz')!r})
n = {len(CASES)}
arrays = [io[f"arr_{{i}}"] for i in range(2 * n)]
got = [keras.ops.convert_to_numpy(y) for y in model(arrays[:n])]
for g, want in zip(got, arrays[n:]):
    np.testing.assert_array_equal(g, want)
print("identical", len(got))
"""
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"identical {len(CASES)}" in result.stdout


def test_aliases():
    assert kc.Convolution2D is kc.Conv2D and kc.Convolution3D is kc.Conv3D
    assert kc.Deconv2D is kc.Deconvolution2D is kc.Convolution2DTranspose is kc.Conv2DTranspose
    assert kc.Deconv3D is kc.Conv3DTranspose and kc.SeparableConvolution1D is kc.SeparableConv1D


def test_loading_without_the_import_is_explained(tmp_path):
    """What a user sees loading our .keras file in a process that never imported
    keras_convx: Keras refuses (it imports only its own packages' modules), and its message
    carries our registered names, which the README's "Loading saved models" explains;
    importing keras_convx first makes it load."""
    model = keras.Sequential([keras.Input((6, 6, 2)), kc.Conv2D(3, 3, name="conv")])
    model.save(tmp_path / "m.keras")
    script = f"""
import keras
path = {str(tmp_path / 'm.keras')!r}
try:
    keras.saving.load_model(path)
    print("LOADED WITHOUT IMPORT")
except Exception as err:
    text = str(err)
    print("REFUSED", "Could not locate class 'Conv2D'" in text, "keras_convx>Conv2D" in text)
import keras_convx
print("AFTER IMPORT", type(keras.saving.load_model(path).layers[0]).__module__)
"""
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REFUSED True True" in result.stdout, result.stdout
    assert "AFTER IMPORT keras_convx.layers.conv" in result.stdout, result.stdout
