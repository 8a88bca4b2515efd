"""Dynamically quantized graphs (onnxruntime's `quantize_dynamic`) as their float graphs.

`quantize_dynamic` writes each Conv and MatMul as

    DynamicQuantizeLinear(x) -> (xq, x_scale, x_zero)
    ConvInteger / MatMulInteger(xq, Wq, x_zero, W_zero) -> Cast(float) -> Mul(x_scale * W_scale)

The float graph is the op on `x` with the weight dequantized exactly, `(Wq - W_zero) *
W_scale`: what the import builds and what its verification compares against, like a QDQ
graph's. The activations' run-time rounding is the only thing left out.
"""

import numpy as np
import onnx
from onnx import helper, numpy_helper

ONNX = ("", "ai.onnx")
INTEGER_OPS = {"ConvInteger": "Conv", "MatMulInteger": "MatMul"}


def _users(nodes):
    users = {}
    for node in nodes:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _producer(nodes, name):
    return next((n for n in nodes if name in n.output), None)


def _only(users, name, outputs, op_type):
    found = users.get(name, [])
    if len(found) != 1 or name in outputs or found[0].op_type != op_type:
        return None
    return found[0]


def _weight(values, node, scale_name):
    """The float weight of an integer node, or None where its parameters aren't constants
    that broadcast per tensor or per output channel."""
    wq = values.get(node.input[1])
    zero = values.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    scale = values.get(scale_name)
    if wq is None or scale is None or (len(node.input) > 3 and node.input[3] and zero is None):
        return None
    channels = wq.shape[0] if node.op_type == "ConvInteger" else wq.shape[-1]
    shape = ((channels,) + (1,) * (wq.ndim - 1) if node.op_type == "ConvInteger"
             else (channels,))

    def per_channel(value):
        if value is None:
            return np.float64(0)
        if value.size == 1:
            return np.float64(value.reshape(-1)[0])
        if value.size == channels:
            return value.astype(np.float64).reshape(shape)
        return None

    z, s = per_channel(zero), per_channel(scale)
    if z is None or s is None:
        return None
    return ((wq.astype(np.float64) - z) * s).astype(np.float32), zero, scale


def _scale_const(nodes, values, name, x_scale):
    """`name` = Mul(x_scale, W_scale): the constant W_scale's name and the Mul node."""
    mul = _producer(nodes, name)
    if mul is None or mul.op_type != "Mul" or mul.domain not in ONNX or x_scale not in mul.input:
        return None
    other = mul.input[1] if mul.input[0] == x_scale else mul.input[0]
    return (other, mul) if other in values else None


def dequantize_dynamic(model):
    """`model` with every DynamicQuantizeLinear -> ConvInteger/MatMulInteger -> Cast -> Mul
    chain replaced by the float Conv/MatMul on the unquantized input (a copy; `model`
    itself when it has none). Returns `(model, params)`: `params` lists, per rewritten
    node, its weight's scale and zero point as the import's `quantization` records them.
    A chain of another shape is left as it is (the import then names its ops)."""
    nodes = list(model.graph.node)
    if not any(n.op_type == "DynamicQuantizeLinear" for n in nodes):
        return model, []
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    users = _users(nodes)
    replace, drop, new_weights, params = {}, set(), [], []
    for dq in nodes:
        if dq.op_type != "DynamicQuantizeLinear" or dq.domain not in ONNX:
            continue
        x, (xq, x_scale, x_zero) = dq.input[0], dq.output
        readers = users.get(xq, [])
        if not readers or any(r.op_type not in INTEGER_OPS or r.input[0] != xq
                              or (len(r.input) > 2 and r.input[2] not in ("", x_zero))
                              for r in readers) or {xq, x_scale, x_zero} & outputs:
            continue
        chains = []
        for integer in readers:
            cast = _only(users, integer.output[0], outputs, "Cast")
            if cast is None or helper.get_attribute_value(cast.attribute[0]) != \
                    onnx.TensorProto.FLOAT:
                break
            mul = _only(users, cast.output[0], outputs, "Mul")
            if mul is None:
                break
            found = _scale_const(nodes, values,
                                 mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0],
                                 x_scale)
            weight = found and _weight(values, integer, found[0])
            if not weight:
                break
            chains.append((integer, cast, mul, found[1], weight))
        else:
            muls, ours = {id(c[3]) for c in chains}, {id(r) for r in readers}
            scale_users = [u for u in users.get(x_scale, []) if id(u) not in muls]
            zero_users = [u for u in users.get(x_zero, []) if id(u) not in ours]
            if scale_users or zero_users:
                continue  # x_scale or x_zero read elsewhere: not this pattern
            for integer, cast, mul, scale_mul, (w, zero, scale) in chains:
                name = f"{integer.input[1]}_dequantized"
                new_weights.append(numpy_helper.from_array(w, name))
                float_node = helper.make_node(
                    INTEGER_OPS[integer.op_type], [x, name], list(mul.output),
                    name=integer.name or mul.name)
                float_node.attribute.extend(integer.attribute)
                replace[id(mul)] = float_node
                drop.update({id(integer), id(cast), id(scale_mul)})
                params.append({
                    "node": integer.name, "op": integer.op_type, "tensor": integer.input[1],
                    "weight": True, "scale": np.asarray(scale, np.float64).reshape(-1).tolist(),
                    "zero_point": None if zero is None else np.asarray(zero).reshape(-1).tolist(),
                    "dtype": None if zero is None else str(np.asarray(zero).dtype),
                    "axis": None if np.size(scale) == 1 else
                    (0 if integer.op_type == "ConvInteger" else 1)})
            params.append({"node": dq.name, "op": "DynamicQuantizeLinear", "tensor": x,
                           "weight": False, "scale": None, "zero_point": None,
                           "dtype": "uint8", "axis": None})
            drop.add(id(dq))
    if not replace:
        return model, []
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [replace.get(id(n), n) for n in nodes if id(n) not in drop]
    del out.graph.node[:]
    out.graph.node.extend(kept)
    out.graph.initializer.extend(new_weights)
    used = {i for n in kept for i in n.input} | outputs
    for tensor in [t for t in out.graph.initializer if t.name not in used]:
        out.graph.initializer.remove(tensor)
    stale = {o for n in nodes if id(n) in drop for o in n.output}
    for info in [v for v in out.graph.value_info if v.name in stale]:
        out.graph.value_info.remove(info)
    return out, params
