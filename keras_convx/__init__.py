"""keras_convx: the convolution family as Keras 3 layers, on any backend.

The namespace is lazy: `import keras_convx` imports neither Keras nor onnx, and each name
below loads its module on first use (`python -m keras_convx --help` stays fast). The layers
register themselves with Keras as soon as Keras is imported, by anyone, so `.keras` files
that hold them load after `import keras_convx` in any order.
"""

import os as _os
import sys as _sys

# TensorFlow's C++ info lines drown users' output (the CLI hides its absl lines too)
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_convx.utils.version import VERSION as __version__  # noqa: E402

_LAYERS = (
    "BaseConv", "BaseConvTranspose", "BaseCropping", "BaseDepthwiseConv", "BasePadding",
    "BaseSeparableConv", "BaseUpSampling", "BaseZeroPadding", "Conv1D", "Conv1DTranspose",
    "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "Convolution1D",
    "Convolution1DTranspose", "Convolution2D", "Convolution2DTranspose", "Convolution3D",
    "Convolution3DTranspose", "CropToMatch", "Cropping1D", "Cropping2D", "Cropping3D",
    "Deconv2D", "Deconv3D", "Deconvolution2D", "Deconvolution3D", "DepthwiseConv1D",
    "DepthwiseConv2D", "DepthwiseConv3D", "Padding1D", "Padding2D", "Padding3D",
    "SeparableConv1D", "SeparableConv2D", "SeparableConv3D", "SeparableConvolution1D",
    "SeparableConvolution2D", "SeparableConvolution3D", "UpSampling1D", "UpSampling2D",
    "UpSampling3D", "WindowedLayer", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
)
# public name -> the module that defines it (a module's own name: the module itself)
_TABLE = {
    **{name: "keras_convx.layers" for name in _LAYERS},
    **{name: "keras_convx.exporter" for name in (
        "export_onnx", "verify_onnx", "ExportReport", "VerifyReport", "ExportError",
        "VerificationError")},
    **{name: "keras_convx.verification.report" for name in ("VerificationFailed", "Report")},
    "VerifyOptions": "keras_convx.verification.options",
    **{name: "keras_convx.importer" for name in (
        "import_onnx", "OnnxImportError", "UnsupportedOps", "verify_import",
        "diagnose_import")},
    **{name: "keras_convx.model_config" for name in (
        "ConfigError", "build_model", "register_layer", "to_yaml", "validate")},
    # (the module is `conversion`: a submodule import binds its name in this namespace, which
    # would hide a function of the same name)
    **{name: "keras_convx.conversion" for name in ("convert", "copy_weights")},
    **{name: f"keras_convx.{name}" for name in (
        "constraints", "ops", "regularizers", "weights", "layers", "exporter", "importer",
        "model_config", "testing")},
}

__all__ = sorted(_TABLE) + ["__version__"]


def __getattr__(name):
    module_name = _TABLE.get(name)
    if module_name is None:
        raise AttributeError(f"module 'keras_convx' has no attribute {name!r}")
    from importlib import import_module

    _register_layers()
    module = import_module(module_name)
    value = module if module_name == f"keras_convx.{name}" else getattr(module, name)
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _register_layers():
    """Imports our layers (the tensor-operation ones too), which registers them with Keras."""
    from importlib import import_module

    # (keras_convx.layers imports its tensor_ops module at its end)
    # either in sys.modules: imported, or being imported now (and registering)
    if "keras_convx.layers" not in _sys.modules and \
            "keras_convx.layers.tensor_ops" not in _sys.modules:
        import_module("keras_convx.layers")


def _register_when_keras_loads():
    """Registers our layers once Keras is imported (now, if it already is)."""
    if "keras" in _sys.modules:
        _register_layers()
        return
    import importlib.abc
    import importlib.util

    class _AfterKeras(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != "keras":
                return None
            _sys.meta_path.remove(self)  # once; the real finders locate Keras
            spec = importlib.util.find_spec("keras")
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                _register_layers()  # Keras is complete here

            spec.loader.exec_module = exec_module
            return spec

    _sys.meta_path.insert(0, _AfterKeras())


_register_when_keras_loads()
