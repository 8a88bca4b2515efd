"""Target-aware export: what an execution provider is known to reject or run slowly, each
rule with its reference, and the alternative lowering where one exists.

`lint(onnx_model, target)` lists findings; `adapt(onnx_model, target)` rewrites what can be
rewritten (ConvTranspose with asymmetric pads -> symmetric pads and a Slice, for CUDA and
TensorRT) and returns the findings it fixed.
"""

import numpy as np

TARGETS = ("cpu", "cuda", "tensorrt", "xnnpack", "coreml")

RULES = {
    "convtranspose-asymmetric-pads": {
        "targets": ("cuda", "tensorrt"),
        "what": "ConvTranspose with different begin and end pads (Keras's 'same' with "
                "stride 2 gives them) is rejected",
        "reference": "onnxruntime#11312 (CUDA provider), TensorRT#1293",
        "fix": "symmetric pads and a Slice (applied for this target)"},
    "symbolic-spatial-conv": {
        "targets": ("xnnpack",),
        "what": "Conv/ConvTranspose whose height or width is symbolic is not taken by the "
                "XNNPACK provider (it runs on the default CPU kernels)",
        "reference": "onnxruntime#32387 (ConvBase::IsOnnxNodeSupported declines unknown "
                     "C/H/W)",
        "fix": "export with static spatial sizes (dynamic_axes=('batch',) or ())"},
    "dynamic-input-shape": {
        "targets": ("coreml",),
        "what": "an input with a dynamic dimension: the CoreML provider does not support "
                "dynamic input shapes",
        "reference": "onnxruntime docs, 'Making dynamic input shapes fixed' "
                     "(onnxruntime.ai/docs/tutorials/mobile/helpers/make-dynamic-shape-fixed)",
        "fix": "export with dynamic_axes=() and batch_size=N"},
    "opset-loses-fusions": {
        "targets": ("cpu", "cuda"),
        "what": "at opset 22 and later onnxruntime's Conv fusions no longer apply",
        "reference": "onnxruntime#27262",
        "fix": "opset 21 or lower (keras_convx exports 17 by default)"},
}


def _finding(rule, where, detail="", fixed=False):
    r = RULES[rule]
    return {"rule": rule, "where": where, "what": r["what"] + (f" ({detail})" if detail else ""),
            "reference": r["reference"], "fix": r["fix"], "fixed": fixed}


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else a.i
    return default


def _dynamic_spatial(onnx_model):
    for value in onnx_model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if len(dims) >= 3 and any(not d.HasField("dim_value") for d in dims[1:]):
            return value.name
    return None


def lint(onnx_model, target):
    """Findings for `target`: [{rule, where, what, reference, fix, fixed}]."""
    if target not in TARGETS:
        raise ValueError(f"export: target must be one of {TARGETS}, got {target!r}")
    out = []
    rules = {k for k, r in RULES.items() if target in r["targets"]}
    opset = max((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")),
                default=0)
    if "opset-loses-fusions" in rules and opset >= 22:
        out.append(_finding("opset-loses-fusions", f"opset {opset}"))
    for node in onnx_model.graph.node:
        if "convtranspose-asymmetric-pads" in rules and node.op_type == "ConvTranspose":
            pads = _attr(node, "pads") or []
            half = len(pads) // 2
            if pads and pads[:half] != pads[half:]:
                out.append(_finding("convtranspose-asymmetric-pads", node.name, f"pads {pads}"))
    spatial = _dynamic_spatial(onnx_model)
    if "symbolic-spatial-conv" in rules and spatial:
        convs = [n.name for n in onnx_model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
        if convs:
            out.append(_finding("symbolic-spatial-conv", spatial,
                                f"{len(convs)} Conv/ConvTranspose nodes, e.g. {convs[0]}"))
    if "dynamic-input-shape" in rules:
        for value in onnx_model.graph.input:
            dims = value.type.tensor_type.shape.dim
            if any(not d.HasField("dim_value") for d in dims):
                out.append(_finding("dynamic-input-shape", value.name,
                                    "dims " + str([d.dim_param or d.dim_value for d in dims])))
    return out


def adapt(onnx_model, target):
    """Rewrites `onnx_model` in place for `target`; returns the findings it fixed."""
    if target not in ("cuda", "tensorrt"):
        return []
    from onnx import helper, numpy_helper

    fixed, nodes = [], []
    for node in onnx_model.graph.node:
        pads = (_attr(node, "pads") or []) if node.op_type == "ConvTranspose" else []
        half = len(pads) // 2
        if not pads or pads[:half] == pads[half:]:
            nodes.append(node)
            continue
        begin, end = pads[:half], pads[half:]
        common = [min(b, e) for b, e in zip(begin, end)]
        for a in list(node.attribute):
            if a.name == "pads":
                node.attribute.remove(a)
        node.attribute.append(helper.make_attribute("pads", common + common))
        name = node.output[0]
        node.output[0] = name + "/uncropped"
        starts = [b - c for b, c in zip(begin, common)]
        ends = [-(e - c) if e > c else np.iinfo(np.int64).max for e, c in zip(end, common)]
        consts = {}
        for key, values in (("starts", starts), ("ends", ends),
                            ("axes", list(range(2, 2 + half)))):
            consts[key] = f"{node.name}/crop_{key}"
            onnx_model.graph.initializer.append(
                numpy_helper.from_array(np.asarray(values, np.int64), consts[key]))
        nodes += [node, helper.make_node(
            "Slice", [node.output[0], consts["starts"], consts["ends"], consts["axes"]], [name],
            name=f"{node.name}/crop")]
        fixed.append(_finding("convtranspose-asymmetric-pads", node.name,
                              f"pads {pads} -> {common + common} and a Slice", fixed=True))
    del onnx_model.graph.node[:]
    onnx_model.graph.node.extend(nodes)
    return fixed
