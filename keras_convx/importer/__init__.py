"""ONNX import: the mirror image of the exporter. A registry of conversions keyed by
(domain, op type, since-version), a front end that checks untrusted files and folds
constants, fusion passes, and a graph walk building a Functional Keras model.

`keras_convx` loads this package (and onnx) on first use of `kc.import_onnx`.
"""

from keras_convx.importer import conversions  # noqa: F401  (registers the conversions)
from keras_convx.importer import layers
from keras_convx.importer.api import import_onnx
from keras_convx.importer.errors import OnnxImportError, UnsupportedOps
from keras_convx.importer.registry import (CONVERSIONS, FUSED_DOMAIN, ONNX_ORDER, SAME, SPATIAL,
                                           conversion, supported_ops)
from keras_convx.importer.verify import ImportVerifyReport, diagnose_import, verify_import

__all__ = ["CONVERSIONS", "FUSED_DOMAIN", "ImportVerifyReport", "ONNX_ORDER", "OnnxImportError",
           "SAME", "SPATIAL", "UnsupportedOps", "conversion", "diagnose_import", "import_onnx",
           "layers", "supported_ops", "verify_import"]
