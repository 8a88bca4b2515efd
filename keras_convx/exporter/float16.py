"""float16 export that a GPU would honour.

onnxruntime's CPU provider computes float16 convolutions in float32 (it wraps them in
Casts), so a float16 graph whose activations pass float16's range verifies on CPU and gives
inf on a GPU. Before converting, the float32 graph runs on the verification inputs with
every node output exposed; a node whose values come within `headroom` of float16's range
(|x| > 65504 / headroom: data the check did not draw can go further, 67,700 on a user's
inputs where drawn ones gave 47,000), or sit entirely below its smallest normal number
(GPUs flush subnormals to zero), stays float32
(onnxconverter-common's node block list, with Casts around it), and so do the nodes that
read it: the value is cast to float16 only once a consumer has brought it back in range.
"""

import numpy as np

FLOAT16_MAX = 65504.0
FLOAT16_MIN_NORMAL = 2.0 ** -14  # 6.1e-5
# A tensor stays float32 when its observed max |value| comes within this factor of
# FLOAT16_MAX (4094 at 16x). Measured (benchmarks/fp16_headroom.py, RESULTS.md section 18):
# ten trained nets and the zoo peak at 74x below it or further (DBNet, 891), so 16x keeps
# none of them float32, while a conv that reached 47,000 on drawn inputs reached 67,700 on a
# user's (1.44x further): within 16x, unseen data can overflow.
HEADROOM = 16.0


def check_headroom(headroom):
    if isinstance(headroom, bool) or not isinstance(headroom, (int, float)) or \
            not headroom >= 1.0:
        raise ValueError(f"export: fp16_headroom must be a number >= 1 (the factor between "
                         f"a kept tensor's observed max and float16's {FLOAT16_MAX:g}), got "
                         f"{headroom!r}")
    return float(headroom)


def out_of_range(onnx_model, serialized, feeds, headroom=HEADROOM):
    """[(node, tensor, max |value|, why)] for the nodes whose float outputs come within
    `headroom` of float16's range on `feeds` (a list of feed dicts), in graph order."""
    import onnx

    from keras_convx.verification.ort_runner import inspection_graph, session

    floats = set()
    for vi in list(onnx_model.graph.value_info) + list(onnx_model.graph.output):
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            floats.add(vi.name)
    names = [o for n in onnx_model.graph.node for o in n.output if o]
    sess = session(inspection_graph(onnx_model, names, serialized), "CPUExecutionProvider",
                   "disable")
    outputs = [o.name for o in sess.get_outputs()]
    peak = {}
    for feed in feeds:
        for name, value in zip(outputs, sess.run(None, feed)):
            value = np.asarray(value)
            if value.dtype != np.float32 or not value.size:
                continue
            finite = value[np.isfinite(value)]
            top = float(np.max(np.abs(finite))) if finite.size else 0.0
            peak[name] = max(peak.get(name, 0.0), top)
    found = []
    for node in onnx_model.graph.node:
        for out in node.output:
            top = peak.get(out)
            if top is None:
                continue
            if top > FLOAT16_MAX / headroom:
                found.append((node.name, out, top, (
                    f"reaches {top:.4g}, past float16's {FLOAT16_MAX:g}" if top > FLOAT16_MAX
                    else f"reaches {top:.4g}, {FLOAT16_MAX / top:.3g}x below float16's "
                         f"{FLOAT16_MAX:g}, within the {headroom:g}x headroom")))
                break
            if 0.0 < top < FLOAT16_MIN_NORMAL:
                found.append((node.name, out, top, f"stays below {FLOAT16_MIN_NORMAL:.2g} "
                                                   f"(at most {top:.3g}): float16 subnormals, "
                                                   f"flushed to zero on GPUs"))
                break
    return found


def consumers(onnx_model, tensors):
    """Names of the nodes reading any of `tensors`."""
    tensors = set(tensors)
    return [n.name for n in onnx_model.graph.node if tensors.intersection(n.input)]


def convert(onnx_model, keep):
    """The float16 graph, inputs and outputs float32, the nodes named in `keep` float32."""
    from onnxconverter_common import float16

    original = {n.name: list(n.output) for n in onnx_model.graph.node if n.name in keep}
    converted = float16.convert_float_to_float16(onnx_model, keep_io_types=True,
                                                 node_block_list=list(keep))
    # a kept node's output goes straight to another kept node under the converter's name
    # for it: give it back its own name, which the tensor map refers to
    produced = {o for n in converted.graph.node for o in n.output}
    renames = {}
    for node in converted.graph.node:
        for i, out in enumerate(node.output):
            names = original.get(node.name)
            if names and out == f"{node.name}_output_cast_{i}" and names[i] not in produced:
                renames[out] = names[i]
    for node in converted.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    import onnx

    kept = set(renames.values())
    for vi in converted.graph.value_info:
        vi.name = renames.get(vi.name, vi.name)
        if vi.name in kept:
            vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return converted
