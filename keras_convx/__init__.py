"""keras_convx: the convolution family as Keras 3 layers, on any backend."""

import os as _os
import sys as _sys

# The `keras-convx` command defers everything below until a command needs it, so that
# `--help` and argument errors don't pay for importing Keras and its backend (seconds).
_CLI = _os.path.basename(_sys.argv[0]) == "keras-convx" if _sys.argv else False
# TensorFlow's C++ info lines drown our output; the command hides its warnings too.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if _CLI else "2")

__version__ = "0.1.0"
_EXPORTER = ("export_onnx", "verify_onnx", "ExportReport", "VerifyReport", "ExportError",
             "VerificationError")
_IMPORTER = ("import_onnx", "OnnxImportError", "UnsupportedOps", "verify_import",
             "diagnose_import")


def _load():
    """Imports the layers (registering them with Keras), ops and the YAML builder."""
    from importlib import import_module

    names = {m: import_module(f"keras_convx.{m}")
             for m in ("constraints", "ops", "regularizers", "weights", "layers")}
    converting = import_module("keras_convx.convert")
    names.update(convert=converting.convert, copy_weights=converting.copy_weights)
    config = import_module("keras_convx.model_config")
    names.update({n: getattr(config, n) for n in
                  ("ConfigError", "build_model", "register_layer", "to_yaml", "validate")})
    names.update({n: getattr(names["layers"], n) for n in names["layers"].__all__})
    # the importer's few layers (ConstantOperation, Slice...) must be registered for
    # `.keras` files of imported models to load
    import_module("keras_convx.importer.layers")
    globals().update(names)


if not _CLI:
    _load()


def __getattr__(name):
    # The exporter and importer import onnx/onnxruntime: load them on first use only.
    if name in _EXPORTER or name == "exporter":
        import importlib

        exporter = importlib.import_module("keras_convx.exporter")
        return exporter if name == "exporter" else getattr(exporter, name)
    if name in _IMPORTER or name == "importer":
        import importlib

        importer = importlib.import_module("keras_convx.importer")
        return importer if name == "importer" else getattr(importer, name)
    if _CLI and not name.startswith("__") and "build_model" not in globals():
        _load()
        if name in globals():
            return globals()[name]
    raise AttributeError(f"module 'keras_convx' has no attribute {name!r}")
