"""ONNX export that is proven right: native lowering or tf2onnx, checked and verified.

Not named `onnx`, which would read like the onnx package.
"""

from keras_convx.exporter import lowerings  # noqa: F401  (registers the lowerings)
from keras_convx.exporter.export import (
    ExportReport, UnsupportedModel, export_onnx, unsupported_layers,
)
from keras_convx.exporter.registry import (
    CHANNELS_FIRST, KERAS_ORDER, LOWERINGS, SAME, Lowering, lowering,
)
from keras_convx.exporter.export import LoweringContext
from keras_convx.exporter.verify import (
    ExportError, VerificationError, Verifier, VerifyReport, verify_onnx,
)
