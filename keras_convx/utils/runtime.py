"""What the installed onnxruntime can load: the newest default-domain opset and IR version,
probed once (a one-node model per candidate) rather than hard-coded, so an upgrade of
onnxruntime widens the range by itself."""

import functools

OLDEST_OPSET = 7


def _loads(opset, ir_version):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=ir_version)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises its own Fail/InvalidGraph types
        return False
    return True


@functools.lru_cache(maxsize=None)
def supported_range():
    """`(oldest opset, newest opset, newest IR version)` that both onnx and the installed
    onnxruntime support (default domain)."""
    import onnx

    ir = onnx.IR_VERSION
    while ir > 3 and not _loads(OLDEST_OPSET, ir):
        ir -= 1
    opset = onnx.defs.onnx_opset_version()
    while opset > OLDEST_OPSET and not _loads(opset, ir):
        opset -= 1
    return OLDEST_OPSET, opset, ir
