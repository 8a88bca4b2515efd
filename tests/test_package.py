"""The package namespace: lazy, listed by dir(), and the layers registered with Keras
whenever Keras is imported."""

import subprocess
import sys

import keras
import pytest

import keras_convx as kc
from helpers import BACKEND


def _fresh(code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_dir_lists_every_entry_point_and_the_layer_table_is_complete():
    from keras_convx import layers

    names = dir(kc)
    for name in ("export_onnx", "verify_onnx", "import_onnx", "verify_import", "build_model",
                 "to_yaml", "testing", "Conv2D", "CropToMatch"):
        assert name in names and name in kc.__all__
    assert sorted(kc._LAYERS) == sorted(layers.__all__)  # the lazy table can't drift
    for name in kc.__all__:
        assert getattr(kc, name) is not None


@pytest.mark.skipif(BACKEND != "torch", reason="the namespace is the same on every backend: "
                    "three fresh processes, once per suite")
def test_import_is_lazy_and_keras_files_load_whichever_is_imported_first(tmp_path):
    # importing the package alone pulls in neither Keras nor onnx
    assert _fresh("import sys, keras_convx; print(sorted(m for m in ('keras', 'onnx') "
                  "if m in sys.modules))", tmp_path) == "[]"
    x = keras.Input((6, 6, 2))
    model = keras.Model(x, kc.Conv2D(3, 3, name="conv")(x))
    model.save(tmp_path / "m.keras")
    load = ("import keras; m = keras.saving.load_model('m.keras'); "
            "print(type(m.get_layer('conv')).__module__)")
    # keras_convx first, then Keras (the layers register as Keras loads), and the other way
    assert _fresh("import keras_convx; " + load, tmp_path) == "keras_convx.layers.conv"
    assert _fresh("import keras; import keras_convx; " + load.split("; ", 1)[1],
                  tmp_path) == "keras_convx.layers.conv"


def test_public_functions_are_not_shadowed_by_their_modules():
    # importing a submodule binds its name in the package: a function must not share it
    import importlib

    for name in ("convert", "copy_weights", "build_model", "to_yaml", "export_onnx",
                 "import_onnx", "verify_onnx"):
        module = kc._TABLE[name]
        importlib.import_module(module)
        assert callable(getattr(kc, name)) and not isinstance(getattr(kc, name), type(kc)), name
