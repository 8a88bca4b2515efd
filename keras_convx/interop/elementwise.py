"""Elementwise operations by name, one table for both directions: the `operation` of
keras_convx's `UnaryOperation` / `ConstantOperation` layers <-> the ONNX op."""

# UnaryOperation(operation) <-> ONNX op
UNARY = {"abs": "Abs", "negative": "Neg", "sqrt": "Sqrt", "erf": "Erf",
         "reciprocal": "Reciprocal", "log": "Log", "floor": "Floor", "ceil": "Ceil",
         "round": "Round", "sign": "Sign"}
# ConstantOperation(operation): x <op> constant <-> ONNX op (the reverse_ forms put the
# constant first)
BINARY = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div",
          "reverse_subtract": "Sub", "reverse_divide": "Div", "maximum": "Max",
          "minimum": "Min", "power": "Pow"}
# comparisons with a constant: x <op> constant <-> ONNX op (a boolean result); each
# with the operation that compares the other way round (constant <op> x)
COMPARISONS = {"equal": "Equal", "greater": "Greater", "less": "Less",
               "greater_equal": "GreaterOrEqual", "less_equal": "LessOrEqual"}
SWAPPED = {"equal": "equal", "greater": "less", "less": "greater",
           "greater_equal": "less_equal", "less_equal": "greater_equal"}


def onnx_op(operation):
    """The ONNX op of a UnaryOperation/ConstantOperation `operation`."""
    for table in (UNARY, BINARY, COMPARISONS):
        if operation in table:
            return table[operation]
    raise ValueError(f"no ONNX op for operation {operation!r}")
