"""The importer's public names, loaded together (onnx and the conversions) on first use of
`keras_convx.importer`."""

from keras_convx.importer import conversions  # noqa: F401  (registers the conversions)
from keras_convx.importer import layers
from keras_convx.importer.api import import_onnx
from keras_convx.importer.errors import ImportVerificationError, OnnxImportError, UnsupportedOps
from keras_convx.importer.registry import (CONVERSIONS, FUSED_DOMAIN, ONNX_ORDER, SAME, SPATIAL,
                                           conversion, supported_ops)
from keras_convx.importer.verify import ImportVerifyReport, diagnose_import, verify_import

__all__ = ["CONVERSIONS", "FUSED_DOMAIN", "ImportVerificationError", "ImportVerifyReport",
           "ONNX_ORDER", "OnnxImportError",
           "SAME", "SPATIAL", "UnsupportedOps", "conversion", "diagnose_import", "import_onnx",
           "layers", "supported_ops", "verify_import"]
