"""ONNX import: the mirror image of the exporter. A registry of conversions keyed by
(domain, op type, since-version), a front end that checks untrusted files and folds
constants, fusion passes, and a graph walk building a Functional Keras model.

Its layers live in `keras_convx.layers.tensor_ops` (registered when `keras_convx.layers`
is, so that saved imported models load); importing this package stays light: onnx and
the rest load on first use of a public name.
"""

import importlib


# the public names (`public.__all__`), known without importing them: `from
# keras_convx.importer import frontend` asks this module for "frontend" before importing the
# submodule, and loading `public` then would import the module being imported (a circle)
_PUBLIC = ("CONVERSIONS", "FUSED_DOMAIN", "ImportVerificationError", "ImportVerifyReport",
           "ONNX_ORDER", "OnnxImportError", "SAME", "SPATIAL", "UnsupportedOps", "conversion",
           "diagnose_import", "import_onnx", "layers", "supported_ops", "verify_import")


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'keras_convx.importer' has no attribute {name!r}")
    return getattr(importlib.import_module("keras_convx.importer.public"), name)
