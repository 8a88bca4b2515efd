"""ONNX import: the mirror image of the exporter. A registry of conversions keyed by
(domain, op type, since-version), a front end that checks untrusted files and folds
constants, fusion passes, and a graph walk building a Functional Keras model.

Its layers live in `keras_convx.layers.tensor_ops` (registered when `keras_convx.layers`
is, so that saved imported models load); importing this package stays light: onnx and
the rest load on first use of a public name.
"""

import importlib


def __getattr__(name):
    public = importlib.import_module("keras_convx.importer.public")
    if name in public.__all__:
        return getattr(public, name)
    raise AttributeError(f"module 'keras_convx.importer' has no attribute {name!r}")
