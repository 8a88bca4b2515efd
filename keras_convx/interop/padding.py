"""Padding modes: keras_convx's `padding_mode`/`mode` <-> ONNX Pad's `mode`, one table for
both directions (keras_convx's "symmetric" has no ONNX mode; "wrap" needs opset 19)."""

PAD_MODE_TO_ONNX = {"zeros": "constant", "constant": "constant", "reflect": "reflect",
                    "replicate": "edge", "circular": "wrap"}
PAD_MODE_FROM_ONNX = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
                      "wrap": "circular"}
# ONNX Pad modes per opset: "wrap" arrived in opset 19
WRAP_SINCE = 19
