"""ONNX export that is proven right: native lowering or tf2onnx, checked and verified.

Not named `onnx`, which would read like the onnx package. The public names load on first
use (PEP 562). Verification is `keras_convx.verification`; `verify` is the exporter's
client of it (the tensor map and flat graphs only the exporter has).
"""

import importlib

_PUBLIC = {
    "export": ("ExportReport", "UnsupportedModel", "export_onnx", "LoweringContext"),
    "lowering_coverage": ("unsupported_layers", "coverage", "CoverageRow"),
    "registry": ("CHANNELS_FIRST", "KERAS_ORDER", "LOWERINGS", "SAME", "Lowering", "lowering"),
    "verify": ("ExportError", "VerificationError", "Verifier", "VerifyReport", "verify_onnx"),
    "trace": ("substitute",),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_convx.exporter' has no attribute {name!r}")
    importlib.import_module("keras_convx.exporter.lowerings")  # registers the lowerings
    value = getattr(importlib.import_module(f"keras_convx.exporter.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
