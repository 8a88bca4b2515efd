"""ONNX import without PyTorch: one golden graph per conversion checked against
onnxruntime, refusals, hostile files, a fuzz run, zoo round trips and the CLI."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import keras_convx as kc
from helpers import RTOL_SCALE, assert_close
from keras_convx import interop
from keras_convx.importer import OnnxImportError, UnsupportedOps, frontend, registry

OPSET = 17
RNG = np.random.default_rng(0)


def _w(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def graph(nodes, inputs, initializers=None, outputs=("y",), opset=OPSET, name="g", domains=()):
    """A ModelProto from helper nodes; `inputs` maps names to shapes."""
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()]
    model = helper.make_model(
        helper.make_graph(nodes, name,
                          [helper.make_tensor_value_info(k, TensorProto.FLOAT, s)
                           for k, s in inputs.items()],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                           for o in outputs], inits),
        opset_imports=[helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains],
        ir_version=8)
    # graph outputs need a shape field for the checker: the inferred ones, else the input's
    inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(model).graph.output}
    first = next(iter(inputs.values()))
    del model.graph.output[:]
    for o in outputs:
        known = o in inferred and inferred[o].type.tensor_type.HasField("shape")
        model.graph.output.append(inferred[o] if known else helper.make_tensor_value_info(
            o, TensorProto.FLOAT, first))
    return model


def single(op, shape, inits=None, inputs=None, opset=OPSET, **attrs):
    """One `op` node reading x and the initializers (in order; "" skips an optional)."""
    inits = inits or {}
    names = ["x"] + (inputs if inputs is not None else list(inits))
    return graph([helper.make_node(op, names, ["y"], name=f"the_{op.lower()}", **attrs)],
                 {"x": shape}, {k: v for k, v in inits.items() if k}, opset=opset)


def i64(*values):
    return np.asarray(values, np.int64)


def f32(*values):
    return np.asarray(values, np.float32)


X4 = (2, 4, 9, 10)
CASES = {
    "conv_asymmetric_pads_dilated_strided": lambda: single(
        "Conv", X4, {"w": _w(6, 4, 3, 2), "b": _w(6)}, pads=[2, 0, 1, 1], strides=[2, 3],
        dilations=[2, 1]),
    "conv_same_lower_s2": lambda: single("Conv", X4, {"w": _w(5, 4, 3, 3)},
                                         auto_pad="SAME_LOWER", strides=[2, 2]),
    "conv_same_upper": lambda: single("Conv", X4, {"w": _w(5, 4, 4, 4)}, auto_pad="SAME_UPPER"),
    "conv_grouped": lambda: single("Conv", X4, {"w": _w(6, 2, 3, 3)}, group=2, pads=[1] * 4),
    "conv_depthwise_multiplier2": lambda: single("Conv", X4, {"w": _w(8, 1, 3, 3), "b": _w(8)},
                                                 group=4, pads=[1, 1, 1, 1]),
    "conv1d_causal_pad_fused": lambda: graph(
        [helper.make_node("Pad", ["x", "p"], ["xp"], name="pad"),
         helper.make_node("Conv", ["xp", "w"], ["y"], name="conv", dilations=[2])],
        {"x": (2, 3, 12)}, {"p": i64(0, 0, 4, 0, 0, 0), "w": _w(4, 3, 3)}),
    "conv3d_strided": lambda: single("Conv", (1, 2, 5, 6, 7), {"w": _w(3, 2, 2, 3, 3)},
                                     strides=[1, 2, 2], pads=[0, 1, 1, 1, 0, 1]),
    "convtranspose_pads_output_padding": lambda: single(
        "ConvTranspose", X4, {"w": _w(4, 3, 3, 3), "b": _w(3)}, strides=[2, 2],
        pads=[1, 0, 0, 1], output_padding=[1, 0]),
    "convtranspose_groups_dilations": lambda: single(
        "ConvTranspose", X4, {"w": _w(4, 3, 2, 3)}, group=2, dilations=[2, 1], strides=[1, 2]),
    "convtranspose_output_shape": lambda: single(
        "ConvTranspose", X4, {"w": _w(4, 2, 3, 3)}, strides=[2, 2], output_shape=[18, 21]),
    "convtranspose_same_upper": lambda: single(
        "ConvTranspose", X4, {"w": _w(4, 2, 3, 3)}, strides=[2, 2], auto_pad="SAME_UPPER"),
    "pad_reflect": lambda: single("Pad", X4, {"p": i64(0, 0, 2, 1, 0, 0, 1, 3)}, mode="reflect"),
    "pad_edge": lambda: single("Pad", X4, {"p": i64(0, 0, 1, 0, 0, 0, 0, 2)}, mode="edge"),
    "pad_wrap": lambda: single("Pad", X4, {"p": i64(0, 0, 2, 2, 0, 0, 1, 1)}, mode="wrap",
                               opset=19),
    "pad_constant_value": lambda: single("Pad", X4, {"p": i64(0, 0, 1, 2, 0, 0, 3, 0),
                                                     "v": f32(1.5)}),
    "resize_nearest_asymmetric_floor": lambda: single(
        "Resize", X4, {"s": f32(1, 1, 2, 3)}, inputs=["", "s"], mode="nearest",
        coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    "resize_nearest_half_pixel_integer": lambda: single(
        "Resize", X4, {"s": f32(1, 1, 2, 2)}, inputs=["", "s"], mode="nearest"),
    "resize_linear_half_pixel_sizes": lambda: single(
        "Resize", X4, {"sz": i64(2, 4, 13, 25)}, inputs=["", "", "sz"], mode="linear"),
    "resize_linear_align_corners": lambda: single(
        "Resize", X4, {"s": f32(1, 1, 2, 2)}, inputs=["", "s"], mode="linear",
        coordinate_transformation_mode="align_corners"),
    "resize_linear_pytorch_half_pixel_down": lambda: single(
        "Resize", X4, {"s": f32(1, 1, 0.5, 0.5)}, inputs=["", "s"], mode="linear",
        coordinate_transformation_mode="pytorch_half_pixel"),
    "resize_cubic_half_pixel": lambda: single(
        "Resize", X4, {"s": f32(1, 1, 2, 2)}, inputs=["", "s"], mode="cubic",
        cubic_coeff_a=-0.75),
    "maxpool_pads_ceil": lambda: single("MaxPool", X4, kernel_shape=[3, 3], strides=[2, 2],
                                        pads=[1, 0, 0, 1], ceil_mode=1),
    "maxpool_same_pads_one_layer": lambda: single("MaxPool", X4, kernel_shape=[3, 3],
                                                  strides=[2, 2], pads=[1, 0, 1, 1]),
    "avgpool_count_include_pad": lambda: single(
        "AveragePool", X4, kernel_shape=[3, 2], strides=[2, 1], pads=[1, 1, 1, 0],
        count_include_pad=1),
    "avgpool_same_exclude_pad": lambda: single("AveragePool", X4, kernel_shape=[3, 3],
                                               pads=[1, 1, 1, 1]),
    "avgpool_exclude_pad_ceil_mode": lambda: single(
        "AveragePool", X4, kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 0, 0], ceil_mode=1),
    "global_max_pool": lambda: single("GlobalMaxPool", X4),
    "reduce_mean_spatial": lambda: single("ReduceMean", X4, axes=[2, 3], keepdims=0),
    "batchnorm": lambda: single("BatchNormalization", X4, {
        "g": _w(4) + 1, "b": _w(4), "m": _w(4), "v": np.abs(_w(4)) + 0.5}, epsilon=1e-3),
    "instance_norm": lambda: single("InstanceNormalization", X4, {"g": _w(4), "b": _w(4)}),
    "group_norm_v21_per_channel": lambda: single(
        "GroupNormalization", X4, {"g": _w(4), "b": _w(4)}, num_groups=2, opset=21),
    "layer_norm_channels_last_axes": lambda: single(
        "LayerNormalization", X4, {"g": _w(9, 10), "b": _w(9, 10)}, axis=2),
    "softmax_channels": lambda: single("Softmax", X4, axis=1),
    "prelu_per_channel": lambda: single("PRelu", X4, {"slope": _w(4, 1, 1)}),
    "leaky_relu": lambda: single("LeakyRelu", X4, alpha=0.3),
    "clip_relu6": lambda: single("Clip", X4, {"lo": f32(0), "hi": f32(6)}),
    "clip_general": lambda: single("Clip", X4, {"lo": f32(-0.5), "hi": f32(0.7)}),
    "hard_sigmoid_pytorch": lambda: single("HardSigmoid", X4, alpha=1 / 6, beta=0.5),
    "hard_swish": lambda: single("HardSwish", X4),
    "gelu_v20": lambda: single("Gelu", X4, opset=20),
    "erf_gelu_fused": lambda: graph(
        [helper.make_node("Div", ["x", "r2"], ["d"], name="div"),
         helper.make_node("Erf", ["d"], ["e"], name="erf"),
         helper.make_node("Add", ["e", "one"], ["a"], name="add"),
         helper.make_node("Mul", ["x", "a"], ["m"], name="mul"),
         helper.make_node("Mul", ["m", "half"], ["y"], name="half")],
        {"x": X4}, {"r2": f32(np.sqrt(2)), "one": f32(1), "half": f32(0.5)}),
    "add_channel_constant": lambda: single("Add", X4, {"c": _w(4, 1, 1)}),
    "sub_constant_first": lambda: graph([helper.make_node("Sub", ["c", "x"], ["y"], name="sub")],
                                        {"x": X4}, {"c": _w(1, 4, 9, 1)}),
    "div_tensors_and_mul": lambda: graph(
        [helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
         helper.make_node("Add", ["s", "one"], ["s1"], name="add1"),
         helper.make_node("Div", ["x", "s1"], ["d"], name="div"),
         helper.make_node("Mul", ["d", "x"], ["y"], name="mul")],
        {"x": X4}, {"one": f32(1)}),
    "concat_channels": lambda: graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("Concat", ["x", "r"], ["y"], name="cat", axis=1)], {"x": X4}),
    "gemm_transB_alpha_beta": lambda: single("Gemm", (3, 6), {"b": _w(5, 6), "c": _w(5)},
                                             transB=1, alpha=0.5, beta=2.0),
    "flatten_then_gemm_permutes_weights": lambda: graph(
        [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
         helper.make_node("Gemm", ["f", "b", "c"], ["y"], name="fc", transB=1)],
        {"x": X4}, {"b": _w(3, 4 * 9 * 10, scale=0.1), "c": _w(3)}),
    "matmul_add_fused": lambda: graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
         helper.make_node("Add", ["m", "b"], ["y"], name="bias")],
        {"x": (2, 5, 6)}, {"w": _w(6, 3), "b": _w(3)}),
    "reshape_needs_onnx_order": lambda: single("Reshape", X4, {"s": i64(0, 8, -1)}),
    "transpose_pair_cancels": lambda: graph(
        [helper.make_node("Transpose", ["x"], ["t"], name="to_nhwc", perm=[0, 2, 3, 1]),
         helper.make_node("Relu", ["t"], ["r"], name="relu"),
         helper.make_node("Transpose", ["r"], ["u"], name="to_nchw", perm=[0, 3, 1, 2]),
         helper.make_node("Conv", ["u", "w"], ["y"], name="conv")],
        {"x": X4}, {"w": _w(3, 4, 2, 2)}),
    "transpose_relabels": lambda: graph(
        [helper.make_node("Transpose", ["x"], ["t"], name="tr", perm=[0, 1, 3, 2]),
         helper.make_node("Conv", ["t", "w"], ["y"], name="conv")],
        {"x": X4}, {"w": _w(3, 4, 2, 2)}),
    "squeeze_unsqueeze": lambda: graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["g"], name="gap"),
         helper.make_node("Squeeze", ["g", "ax"], ["s"], name="sq"),
         helper.make_node("Unsqueeze", ["s", "ax"], ["y"], name="unsq")],
        {"x": X4}, {"ax": i64(2, 3)}),
    "slice_negative_step": lambda: single(
        "Slice", X4, {"st": i64(-1, 1), "en": i64(-100, 9), "ax": i64(3, 1), "sp": i64(-2, 2)}),
    "gather_last_step": lambda: single("Gather", (2, 4, 12), {"i": np.asarray(-1, np.int64)},
                                       axis=2),
    "gather_channel_range": lambda: single("Gather", X4, {"i": i64(1, 3)}, axis=1),
    "identity_dropout": lambda: graph(
        [helper.make_node("Identity", ["x"], ["i"], name="id"),
         helper.make_node("Dropout", ["i"], ["d"], name="drop"),
         helper.make_node("Tanh", ["d"], ["y"], name="tanh")], {"x": X4}),
    "constant_subgraph_folded": lambda: graph(
        [helper.make_node("Shape", ["x"], ["sh"], name="shape"),
         helper.make_node("Gather", ["sh", "zero"], ["n"], name="batch", axis=0),
         helper.make_node("Unsqueeze", ["n", "zax"], ["n1"], name="n1"),
         helper.make_node("Concat", ["n1", "minus1"], ["target"], name="target", axis=0),
         helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape")],
        {"x": X4}, {"zero": np.asarray(0, np.int64), "zax": i64(0), "minus1": i64(-1)}),
}
# Cases whose channels-last import needs a Permute (ONNX's memory order matters).
NEEDS_PERMUTE = {"reshape_needs_onnx_order", "constant_subgraph_folded",
                 "transpose_relabels",  # swapping H and W moves data
                 "layer_norm_channels_last_axes",  # Keras normalizes trailing axes on torch
                 "matmul_add_fused"}  # a rank-3 input is taken as N, C, L


@pytest.mark.parametrize("name", list(CASES))
def test_conversion_matches_onnxruntime(name):
    proto = CASES[name]()
    model = kc.import_onnx(proto, verify=False)
    report = kc.verify_import(model, proto)
    assert report.passed, report.summary()
    assert all(e.informative for e in report.outputs.values()), report.summary()
    assert report.worst <= RTOL_SCALE * 10, report.summary()
    permutes = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Permute)]
    assert bool(permutes) == (name in NEEDS_PERMUTE), permutes


@pytest.mark.parametrize("name", ["conv_asymmetric_pads_dilated_strided", "pad_reflect",
                                  "convtranspose_output_shape", "flatten_then_gemm_permutes_weights",
                                  "layer_norm_channels_last_axes"])
def test_channels_first_import(name):
    proto = CASES[name]()
    model = kc.import_onnx(proto, data_format="channels_first", verify=False)
    report = kc.verify_import(model, proto, data_format="channels_first")
    assert report.passed, report.summary()
    assert not any(isinstance(layer, keras.layers.Permute) for layer in model.layers)


def test_fusions_make_one_layer_named_after_the_group():
    model = kc.import_onnx(CASES["conv1d_causal_pad_fused"](), verify=False)
    (conv,) = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert conv.name == "conv" and conv.padding == ((4, 0),)  # the Pad's, the conv has none of its own
    model = kc.import_onnx(CASES["erf_gelu_fused"](), verify=False)
    assert [type(layer).__name__ for layer in model.layers[1:]] == ["Activation"]
    model = kc.import_onnx(CASES["matmul_add_fused"](), verify=False)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds.count("Dense") == 1 and "ConstantOperation" not in kinds, kinds


# ---- refusals: a clear error naming the node, never an approximation ------------------

def _batch_arithmetic():
    """Half the dynamic batch size feeds a Reshape: 0 can't stand for it there."""
    proto = graph(
        [helper.make_node("Shape", ["x"], ["sh"], name="shape"),
         helper.make_node("Gather", ["sh", "zero"], ["n"], name="batch", axis=0),
         helper.make_node("Div", ["n", "two"], ["half"], name="half"),
         helper.make_node("Unsqueeze", ["half", "zax"], ["h1"], name="h1"),
         helper.make_node("Concat", ["h1", "minus1"], ["target"], name="target", axis=0),
         helper.make_node("Reshape", ["x", "target"], ["y"], name="the_reshape")],
        {"x": X4}, {"zero": np.asarray(0, np.int64), "two": np.asarray(2, np.int64),
                    "zax": i64(0), "minus1": i64(-1)})
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto


REFUSED = {
    # half the batch truly depends on its value: the Reshape that reads it is named
    "batch_size_arithmetic": (_batch_arithmetic, r"the_reshape \(Reshape\): input 1 \(shape\) "
                              r"is computed from the dynamic batch size \(entries \[0\]"),
    "resize_linear_asymmetric": (lambda: single(
        "Resize", X4, {"s": f32(1, 1, 2, 2)}, inputs=["", "s"], mode="linear",
        coordinate_transformation_mode="asymmetric"), r"the_resize.*asymmetric.*accepted"),
    "avgpool_include_pad_ceil_overhang": (lambda: single(
        "AveragePool", X4, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, count_include_pad=1),
        r"the_averagepool.*count_include_pad=1 with a ceil_mode overhang"),
    "avgpool_window_outside_the_input": (lambda: single(
        "AveragePool", X4, kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 2, 1], ceil_mode=1),
        r"the_averagepool.*leave windows without input pixels"),
    "maxpool_dilations": (lambda: single("MaxPool", X4, kernel_shape=[2, 2], dilations=[2, 2]),
                          r"the_maxpool.*dilations=\[2, 2\]"),
    "gelu_tanh": (lambda: single("Gelu", X4, opset=20, approximate="tanh"),
                  r"the_gelu.*approximate='tanh'"),
    "pad_channels": (lambda: single("Pad", X4, {"p": i64(0, 1, 0, 0, 0, 0, 0, 0)}),
                     r"the_pad.*only spatial axes"),
    "unknown_op": (lambda: single("Det", (2, 3, 3)), r"the_det \(Det\): no conversion for ai.onnx Det"),
    "softmax_batch_axis": (lambda: single("Softmax", X4, axis=0), r"the_softmax.*batch axis"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_with_node_name_and_reason(name):
    build, pattern = REFUSED[name]
    with pytest.raises(UnsupportedOps, match=pattern):
        kc.import_onnx(build(), verify=False)


def _chain_of_unsupported():
    """Det -> Relu -> Hardmax, and a second path through TopK: each unsupported node sits
    after another (the walk goes on past a refused node on a placeholder)."""
    return graph([helper.make_node("Det", ["x"], ["d"], name="first_det"),
                  helper.make_node("Relu", ["d"], ["r"], name="fine"),
                  helper.make_node("Unsqueeze", ["r", "ax"], ["u"], name="unsq"),
                  helper.make_node("Hardmax", ["u"], ["h"], name="second_hardmax"),
                  helper.make_node("Hardmax", ["h"], ["y"], name="third_hardmax", axis=0)],
                 {"x": (2, 3, 3)}, {"ax": i64(1)}, opset=18)


def test_all_unsupported_nodes_listed_at_once():
    with pytest.raises(UnsupportedOps) as info:
        kc.import_onnx(_chain_of_unsupported(), verify=False)
    assert [n for n, _, _ in info.value.nodes] == ["first_det", "second_hardmax",
                                                   "third_hardmax"]
    assert "3 node(s)" in str(info.value) and info.value.not_tried == 0


# ---- registry and interop ---------------------------------------------------------------

def test_registry_refuses_duplicates_and_picks_the_opset_version():
    with pytest.raises(ValueError, match=r"Relu \(domain '', since opset 1\) already has"):
        registry.conversion("Relu", since=1)(lambda ctx: None)
    assert registry.find("", "Softmax", 12).since == 1
    assert registry.find("", "Softmax", 17).since == 13
    assert registry.find("", "GroupNormalization", 21).since == 21
    assert registry.find("", "GroupNormalization", 18) is None  # opset 18's is deprecated
    assert registry.find("com.microsoft", "Relu", 1) is None


def test_extension_hook_registers_a_conversion():
    key = ("my.domain", "Twice", 1)
    try:
        @kc.importer.conversion("Twice", domain="my.domain")
        def convert_twice(ctx):
            layer = kc.importer.layers.ConstantOperation
            out = ctx.layer(layer, "multiply", shape=())
            ctx.last_layer.constant.assign(np.float32(2))
            return out

        proto = graph([helper.make_node("Twice", ["x"], ["y"], name="t", domain="my.domain")],
                      {"x": (2, 3)}, domains=["my.domain"])
        x = np.ones((2, 3), np.float32)
        assert_close(kc.import_onnx(proto, verify=False)(x), 2 * x)
    finally:
        registry.CONVERSIONS.pop(key, None)


def test_interop_kernel_layouts_are_inverse_and_match_weights_module():
    kernel = _w(3, 2, 4, 5)
    assert np.array_equal(interop.kernel_from_onnx(interop.kernel_to_onnx(kernel)), kernel)
    depthwise = _w(3, 3, 4, 2)
    onnx_dw = interop.depthwise_to_onnx(depthwise)
    assert onnx_dw.shape == (8, 1, 3, 3)
    assert np.array_equal(interop.depthwise_from_onnx(onnx_dw, 4), depthwise)
    layer = kc.Conv2D(5, (3, 2), kernel_initializer="zeros")
    layer.build((None, 6, 6, 4))
    layer.kernel.assign(_w(3, 2, 4, 5))
    assert np.array_equal(kc.weights.to_torch(layer)["weight"],
                          interop.kernel_to_onnx(keras.ops.convert_to_numpy(layer.kernel)))


@pytest.mark.parametrize("interpolation,align,exclude", [
    ("nearest", False, False), ("bilinear", False, False), ("bilinear", True, False),
    ("bicubic", True, False), ("bicubic", False, True), ("trilinear", False, False)])
def test_interop_resize_modes_round_trip(interpolation, align, exclude):
    rank = 3 if interpolation == "trilinear" else 2
    attrs = interop.resize_attributes(interpolation, align, exclude)
    got = interop.upsampling_from_resize(attrs, (2,) * rank, (5,) * rank, (10,) * rank)
    assert got == (interpolation, align and interpolation != "nearest", exclude)


def test_interop_conv_transpose_padding_follows_the_spec():
    # total padding 2*(9-1) + 0 + 3 - 18 = 1: the odd pixel at the start unless SAME_UPPER
    assert interop.conv_transpose_padding([9], [3], [2], [1], output_shape=[18]) == (((1, 0),), (0,))
    assert interop.conv_transpose_padding([9], [3], [2], [1], output_shape=[18],
                                          auto_pad="SAME_UPPER") == (((0, 1),), (0,))
    # an output one longer than the full one is output padding
    assert interop.conv_transpose_padding([9], [3], [2], [1], output_shape=[20]) == (((0, 0),), (1,))
    with pytest.raises(ValueError, match="output_padding"):
        interop.conv_transpose_padding([9], [3], [2], [1], output_shape=[22])
    pads, output_padding = interop.crops_to_onnx([(1, -1), (0, 2)])
    assert pads == [1, 0, 0, 2] and output_padding == [1, 0]


# ---- round trips: keras_convx -> ONNX (the exporter) -> Keras (the importer) -----------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUND_TRIP_CONFIGS = ["wavenet", "mobilenet", "resnet50", "xception", "unet", "unet3d"]


def _random_batchnorm(model, seed=0):
    """BatchNorm statistics as after training (fresh ones are the identity)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.path.endswith(("moving_variance", "gamma")):
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32))
        elif w.path.endswith(("moving_mean", "beta")):
            w.assign(rng.uniform(-0.3, 0.3, w.shape).astype(np.float32))


def _round_trip(model, tmp_path, name):
    """Export with the defaults (NHWC in and out), import: the same signature (layout
    inference keeps the file's NHWC), the same values."""
    path = str(tmp_path / f"{name}.onnx")
    kc.export_onnx(model, path, verify=False)
    back = kc.import_onnx(path, verify=False)
    assert tuple(back.input.shape) == tuple(model.input.shape)
    assert tuple(back.output.shape) == tuple(model.output.shape)
    x = np.random.default_rng(1).standard_normal((2,) + tuple(model.input.shape[1:]))
    x = x.astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert_close(back(x, training=False), expected, RTOL_SCALE)
    return back


@pytest.mark.parametrize("config", ROUND_TRIP_CONFIGS)
def test_zoo_round_trip_export_import(config, tmp_path):
    if config != "wavenet" and keras.backend.backend() == "jax":
        # JAX compiles each random initializer of the build (30 s for mobilenet); the graph
        # and the import don't depend on the backend, and TF and torch run them all (1 s each)
        pytest.skip(f"{config} round trip runs on TensorFlow and torch (CI time on JAX)")
    model = kc.build_model(os.path.join(ROOT, "configs", f"{config}.yaml"), scale="t")
    _random_batchnorm(model)
    back = _round_trip(model, tmp_path, config)
    assert not any(isinstance(layer, keras.layers.Permute) for layer in back.layers)
    # re-export: the same ONNX ops (a Dropout's Identity is dropped on import, and a
    # flattening Reshape comes back as Flatten)
    kc.export_onnx(back, str(tmp_path / "again.onnx"), verify=False)
    assert _op_multiset(tmp_path / f"{config}.onnx") == _op_multiset(tmp_path / "again.onnx")


def _op_multiset(path):
    import collections

    same = {"Flatten": "Reshape"}
    return collections.Counter(same.get(n.op_type, n.op_type) for n in
                               onnx.load(str(path)).graph.node if n.op_type != "Identity")


def test_exporter_lowerings_round_trip(tmp_path):
    """The conv family's PyTorch semantics survive export and import."""
    zeros = dict(bias_initializer="zeros")  # random weights are set below: no init compile
    inputs = keras.Input((12, 11, 4))
    x = kc.Conv2D(6, (3, 2), strides=(2, 1), padding=((2, 0), (1, 1)), padding_mode="reflect",
                  dilation_rate=(1, 2), kernel_initializer="zeros", **zeros)(inputs)
    x = kc.DepthwiseConv2D(3, padding="same", depth_multiplier=2, padding_mode="circular",
                           depthwise_initializer="zeros", **zeros)(x)
    x = kc.SeparableConv2D(5, 3, padding="same", depthwise_initializer="zeros",
                           pointwise_initializer="zeros", **zeros)(x)
    x = kc.Conv2DTranspose(4, 3, strides=2, padding=((1, 0), (0, 1)), output_padding=1,
                           kernel_initializer="zeros", **zeros)(x)
    x = kc.UpSampling2D(2, interpolation="bilinear", align_corners=True)(x)
    x = kc.UpSampling2D((2, 1), interpolation="bicubic")(x)
    x = kc.Padding2D(((1, 0), (2, 1)), mode="replicate")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    model = keras.Model(inputs, keras.layers.Activation("relu6")(x))
    for i, w in enumerate(model.weights):
        w.assign(np.random.default_rng(i).standard_normal(w.shape).astype(np.float32) * 0.3)
    back = _round_trip(model, tmp_path, "lowerings")
    kinds = [type(layer).__name__ for layer in back.layers]
    for kind in ("Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "UpSampling2D"):
        assert kind in kinds, kinds


TRANSPOSE_ROUND_TRIPS = {  # id -> Conv2DTranspose arguments: crops <-> pads/output_padding
    "valid-s2": dict(kernel_size=3, strides=2),
    "same-s2-k4": dict(kernel_size=4, strides=2, padding="same"),
    "same-s3-k2": dict(kernel_size=2, strides=3, padding="same"),
    "explicit-output_padding": dict(kernel_size=3, strides=(2, 3), padding=((1, 0), (2, 1)),
                                    output_padding=(1, 2)),
    "dilated-grouped": dict(kernel_size=3, strides=2, dilation_rate=2, groups=2,
                            output_padding=1, padding="valid"),
    "output_size": dict(kernel_size=3, strides=2, padding="same", output_size=(11, 9)),
}


@pytest.mark.parametrize("case", list(TRANSPOSE_ROUND_TRIPS))
def test_transposed_conv_crops_round_trip(case, tmp_path):
    """Keras crops -> ONNX pads/output_padding (exporter) -> crops (importer), one interop."""
    inputs = keras.Input((6, 5, 4))
    layer = kc.Conv2DTranspose(4, kernel_initializer="zeros", **TRANSPOSE_ROUND_TRIPS[case])
    model = keras.Model(inputs, layer(inputs))
    layer.kernel.assign(_w(*layer.kernel.shape))
    back = _round_trip(model, tmp_path, case)
    assert [type(x).__name__ for x in back.layers[1:]] == ["Conv2DTranspose"]
    assert tuple(back.output.shape) == tuple(model.output.shape)


@pytest.mark.parametrize("interpolation,align,size", [
    ("nearest", False, (2, 3)), ("nearest", False, (1.5, 2)), ("bilinear", False, (2, 2)),
    ("bilinear", True, (2, 1.5)), ("bicubic", False, (2, 2)), ("bicubic", True, (3, 2))],
    ids=lambda v: str(v))
def test_upsampling_resize_modes_round_trip(interpolation, align, size, tmp_path):
    """keras_convx up-sampling -> Resize attributes (exporter) -> the same layer (importer)."""
    inputs = keras.Input((6, 5, 3))
    layer = kc.UpSampling2D(size, interpolation=interpolation, align_corners=align)
    back = _round_trip(keras.Model(inputs, layer(inputs)), tmp_path, "resize")
    (imported,) = back.layers[1:]
    assert (imported.interpolation, imported.align_corners) == (interpolation, align)
    assert tuple(imported.size) == tuple(layer.size)


@pytest.mark.parametrize("name", ["add_channel_constant", "sub_constant_first",
                                  "div_tensors_and_mul", "slice_negative_step", "clip_general",
                                  "gather_last_step", "avgpool_exclude_pad_ceil_mode"])
def test_imported_models_export_again(name, tmp_path):
    """The importer's own layers have native lowerings: export verifies, no tf2onnx."""
    model = kc.import_onnx(CASES[name](), verify=False)
    report = kc.export_onnx(model, str(tmp_path / "again.onnx"), method="native")
    assert report.passed and report.transpose_count <= 2


def test_saved_imported_model_exports_in_a_fresh_process(tmp_path):
    """The importer's layers load and lower with only `import keras_convx`: the script never
    uses `kc.importer`."""
    model = kc.import_onnx(CASES["div_tensors_and_mul"](), verify=False)
    model.save(tmp_path / "m.keras")
    script = (
        "import keras, keras_convx as kc\n"
        f"model = keras.saving.load_model({str(tmp_path / 'm.keras')!r}, safe_mode=True)\n"
        f"report = kc.export_onnx(model, {str(tmp_path / 'm.onnx')!r}, method='native')\n"
        "print('passed', report.passed)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "passed True" in result.stdout


# ---- the command line -------------------------------------------------------------------

def _cli(capsys, *argv):
    from keras_convx.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def unet_onnx(tmp_path_factory):
    """A small NCHW graph with a reflect pad, conv, transpose conv and resize."""
    proto = graph(
        [helper.make_node("Pad", ["x", "p"], ["xp"], name="pad", mode="reflect"),
         helper.make_node("Conv", ["xp", "w"], ["c"], name="conv"),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("ConvTranspose", ["r", "wt"], ["t"], name="up", strides=[2, 2]),
         helper.make_node("Resize", ["t", "", "s"], ["y"], name="resize", mode="linear",
                          coordinate_transformation_mode="align_corners")],
        {"x": (1, 3, 8, 8)},
        {"p": i64(0, 0, 1, 1, 0, 0, 1, 1), "w": _w(4, 3, 3, 3), "wt": _w(4, 2, 2, 2),
         "s": f32(1, 1, 2, 2)})
    path = tmp_path_factory.mktemp("cli") / "tiny.onnx"
    onnx.save(proto, str(path))
    return path


def test_cli_import_writes_keras_and_yaml(unet_onnx, tmp_path, capsys):
    out, yaml_path = tmp_path / "tiny.keras", tmp_path / "tiny.yaml"
    code, stdout, err = _cli(capsys, "import", str(unet_onnx), "-o", str(out), "--yaml",
                             str(yaml_path))
    assert code == 0, err
    assert "y: ok" in stdout and f"wrote {out}" in stdout
    loaded = keras.saving.load_model(out, safe_mode=True)
    rebuilt = kc.build_model(str(yaml_path))
    rebuilt.set_weights(loaded.get_weights())
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
    assert_close(rebuilt(x), keras.ops.convert_to_numpy(loaded(x)))
    assert [f for f in os.listdir(tmp_path) if f.startswith(".import-")] == []


@pytest.mark.parametrize("argv,message", [
    (["missing.onnx"], "missing.onnx: no such file"),
    (["{model}", "-o", "out.h5"], "must end in .keras"),
    (["{model}", "-o", "/nonexistent/folder/m.keras"], "folder /nonexistent/folder does not exist"),
])
def test_cli_import_bad_input_exits_2(argv, message, unet_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, "import", *[a.format(model=unet_onnx) for a in argv])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_import_unsupported_ops_exit_2_listing_nodes(tmp_path, capsys):
    onnx.save(_chain_of_unsupported(), str(tmp_path / "bad.onnx"))
    code, _, err = _cli(capsys, "import", str(tmp_path / "bad.onnx"))
    lines = err.strip().splitlines()
    assert code == 2 and "3 node(s)" in lines[0], err
    assert [line.split()[0] for line in lines[1:]] == ["first_det", "second_hardmax",
                                                       "third_hardmax"], err
    assert not (tmp_path / "bad.keras").exists()


def test_cli_import_verification_failure_exits_1_and_writes_nothing(unet_onnx, tmp_path,
                                                                    capsys, monkeypatch):
    """A fault injected into the kernel conversion (weights x1.05) is caught, and an
    existing output file is left as it was."""
    from keras_convx import weights

    real = weights._torch_to_keras
    monkeypatch.setattr(weights, "_torch_to_keras", lambda w: real(w) * np.float32(1.05))
    out = tmp_path / "tiny.keras"
    out.write_bytes(b"previous")
    code, stdout, err = _cli(capsys, "import", str(unet_onnx), "-o", str(out))
    assert code == 1 and "verification failed" in err and "FAIL" in stdout
    assert "first difference at node 'conv' (Conv)" in err  # the pad fused into it, too
    assert out.read_bytes() == b"previous"
    assert [f for f in os.listdir(tmp_path) if f.startswith(".import-")] == []


def test_yaml_text_of_an_imported_model_rebuilds_it(unet_onnx):
    model = kc.import_onnx(unet_onnx, verify=False)
    text = kc.to_yaml(model)
    assert re.search(r"type: Conv2D\n\s+name: conv", text) and "padding_mode: reflect" in text


def test_import_verification_never_passes_constant_or_nan_graphs(tmp_path, capsys):
    # the export's rule on the way back: a constant graph (x * 0) proves nothing, and NaN
    # on both sides (Sqrt of a conv's negative values) is no agreement
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1] * 4)
    zero = graph([conv, helper.make_node("Mul", ["c", "z"], ["y"], name="times_zero")],
                 {"x": (1, 3, 6, 6)}, {"w": _w(4, 3, 3, 3), "z": f32(0.0)})
    report = kc.verify_import(kc.import_onnx(zero, verify=False), zero)
    assert report.outputs["y"].informative is False and report.tensors[0][3].informative
    assert not report.passed and "an output is constant" in report.summary()
    nan = graph([conv, helper.make_node("Sqrt", ["c"], ["s"], name="root"),
                 helper.make_node("Relu", ["s"], ["y"], name="relu")],
                {"x": (1, 3, 6, 6)}, {"w": _w(4, 3, 3, 3)})
    report = kc.verify_import(kc.import_onnx(nan, verify=False), nan)
    assert not report.passed
    assert report.failed[0][:2] == ("root", "Sqrt") and report.failed[0][3].nonfinite == "both"
    onnx.save(nan, str(tmp_path / "nan.onnx"))
    code, _, err = _cli(capsys, "import", str(tmp_path / "nan.onnx"))
    assert code == 1 and "node 'root' (Sqrt), NaN/Inf (both)" in err
    assert not (tmp_path / "nan.keras").exists()
    # every tensor is compared, not the outputs only
    good = graph([conv, helper.make_node("Relu", ["c"], ["y"], name="relu")],
                 {"x": (1, 3, 6, 6)}, {"w": _w(4, 3, 3, 3)})
    report = kc.verify_import(kc.import_onnx(good, verify=False), good)
    assert report.passed and [r[0] for r in report.tensors] == ["conv", "relu"]


def test_import_onnx_verifies_and_saves_atomically_and_keeps_what_fails(tmp_path):
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1] * 4)
    good = graph([conv, helper.make_node("Relu", ["c"], ["y"], name="relu")],
                 {"x": (1, 3, 6, 6)}, {"w": _w(4, 3, 3, 3)})
    onnx.save(good, str(tmp_path / "good.onnx"))
    model = kc.import_onnx(str(tmp_path / "good.onnx"), verify=True,
                           output=str(tmp_path / "good.keras"))
    assert model.import_report.passed and (tmp_path / "good.keras").exists()
    nan = graph([conv, helper.make_node("Sqrt", ["c"], ["y"], name="root")],
                {"x": (1, 3, 6, 6)}, {"w": _w(4, 3, 3, 3)})
    out = tmp_path / "nan.keras"
    with pytest.raises(kc.importer.ImportVerificationError, match="node 'root' \\(Sqrt\\)") as info:
        kc.import_onnx(nan, verify=True, output=str(out))
    assert not out.exists() and info.value.kept == str(tmp_path / "nan.failed.keras")
    import json

    kept = json.loads((tmp_path / "nan.failed.json").read_text())
    assert kept["passed"] is False and kept["direction"] == "import"
    assert kept["verify"]["tensors"][-1]["nonfinite"] == "both"
    assert sorted(os.listdir(tmp_path)) == ["good.keras", "good.onnx", "nan.failed.json",
                                            "nan.failed.keras"]  # no temporary file left


def test_import_verification_takes_providers_and_levels():
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1] * 4)
    good = graph([conv, helper.make_node("Relu", ["c"], ["y"], name="relu")],
                 {"x": (1, 3, 6, 6)}, {"w": _w(4, 3, 3, 3)})
    model = kc.import_onnx(good, verify=False)
    for level in ("disable", "basic", "all"):
        assert kc.verify_import(model, good, providers=["cpu"], optimization_level=level).passed
    with pytest.raises(ValueError, match="not available"):
        kc.verify_import(model, good, providers=["cuda"])
