"""ONNX import: the mirror image of the exporter. A registry of conversions keyed by
(domain, op type, since-version), a front end that checks untrusted files and folds
constants, fusion passes, and a graph walk building a Functional Keras model.

The public names load on first use, so that importing keras_convx costs nothing here.
"""

import importlib

_PUBLIC = {
    "api": ("import_onnx",),
    "errors": ("OnnxImportError", "UnsupportedOps"),
    "registry": ("CONVERSIONS", "FUSED_DOMAIN", "ONNX_ORDER", "SAME", "SPATIAL", "conversion",
                 "supported_ops"),
    "verify": ("ImportVerifyReport", "verify_import"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_convx.importer' has no attribute {name!r}")
    importlib.import_module("keras_convx.importer.conversions")  # registers the conversions
    value = getattr(importlib.import_module(f"keras_convx.importer.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
