"""Import errors: every message names the node (or input/initializer), the bad value and
what is accepted."""

from keras_convx.verification.report import VerificationFailed


class OnnxImportError(ValueError):
    """The ONNX model can't be imported (malformed, hostile or not expressible exactly)."""


class UnsupportedOps(OnnxImportError):
    """Nodes the importer has no exact conversion for, all listed at once.

    Nodes after a refused one are still tried (on a placeholder of the refused output's
    inferred shape), so fixing one op does not reveal the next only on the next run.

    Attributes:
        nodes: list of `(node name, op type, reason)`.
        not_tried: nodes that could not be tried (they read an output of unknown shape).
    """

    def __init__(self, nodes, not_tried=0):
        self.nodes, self.not_tried = list(nodes), int(not_tried)
        lines = [f"  {name} ({op}): {reason}" for name, op, reason in self.nodes]
        if self.not_tried:
            lines.append(f"  ... and {self.not_tried} node(s) after them not tried (they read "
                         f"an output of unknown shape)")
        super().__init__(f"import_onnx: {len(self.nodes)} node(s) can't be imported exactly:\n"
                         + "\n".join(lines))


class ImportVerificationError(OnnxImportError, VerificationFailed):
    """The imported Keras model differs from onnxruntime on the same inputs.

    Attributes:
        report: the import's `Report` (its `verify` section an `ImportVerifyReport`).
        kept: the `.failed.keras` file kept for inspection (with its `.failed.json`
            report), or None when no output path was given.
    """

    def __init__(self, report, kept=None):
        self.report, self.kept = report, kept
        where = f"; kept {kept} and its .failed.json" if kept else "; nothing written"
        super().__init__(f"import_onnx: verification failed: {report.why()}{where}")


class Unsupported(Exception):
    """Raised by a conversion for one node; the graph walk collects them."""
