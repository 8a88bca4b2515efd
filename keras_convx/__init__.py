"""keras_convx: the convolution family as Keras 3 layers, on any backend."""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines drown our output

from keras_convx import constraints, ops, regularizers, weights
from keras_convx.layers import *  # noqa: F401,F403
from keras_convx.model_config import (  # noqa: F401
    ConfigError, build_model, register_layer, to_yaml, validate,
)

__version__ = "0.1.0"


def __getattr__(name):
    # The exporter imports onnx/onnxruntime: load it on first use only.
    if name in ("export_onnx", "verify_onnx", "ExportReport", "VerifyReport", "ExportError",
                "VerificationError", "exporter"):
        import importlib

        exporter = importlib.import_module("keras_convx.exporter")
        return exporter if name == "exporter" else getattr(exporter, name)
    raise AttributeError(f"module 'keras_convx' has no attribute {name!r}")
