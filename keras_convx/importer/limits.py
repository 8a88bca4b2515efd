"""What an import accepts of an untrusted file, and the one way it refuses.

A file can claim any shape: every size is checked against these limits before anything
is allocated (from the file, from external data or by constant folding), and every
refusal is an `OnnxImportError` naming the node, initializer or input.
"""

from keras_convx.importer.errors import OnnxImportError

# Largest tensor (elements) an import materialises or accepts in a shape: 2**28 float32 is
# 1 GiB, beyond any conv net's weights or per-sample activations that the tests meet.
MAX_ELEMENTS = 2 ** 28
# Largest single dimension of an input or inferred shape.
MAX_DIM = 2 ** 24
# Largest constant folded at import (elements); bigger constant results are refused.
MAX_FOLD_ELEMENTS = 2 ** 24
# Rounds of folding and shape inference before giving up on a fixed point.
MAX_FOLD_ROUNDS = 64


def fail(message):
    """Refuses the file: an `OnnxImportError` in `import_onnx`'s words."""
    raise OnnxImportError(f"import_onnx: {message}")


def elements(dims):
    """The element count of a shape (Python ints: no overflow)."""
    total = 1
    for d in dims:
        total *= int(d)
    return total
