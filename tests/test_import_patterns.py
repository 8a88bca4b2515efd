"""Import of the patterns real nets are made of (issue 24), one ONNX graph each, checked
against onnxruntime in both layouts: Split, Expand, Where and comparisons, MatMul/Einsum of
two tensors, Mish and HardSwish as exporters write them, Resize with axes, variadic
Max/Min/Sum, unused extra outputs, shape arithmetic folded to a fixed point with the batch
kept symbolic, and the opset range."""

import keras
import numpy as np
import onnx
import pytest
from onnx import helper

import keras_convx as kc
from helpers import RTOL_SCALE
from keras_convx.importer import OnnxImportError, UnsupportedOps
from keras_convx.utils.runtime import supported_range
from test_import import X4, _w, f32, graph, i64, single

node = helper.make_node


def _two_outputs(nodes, inits=None, shape=X4, opset=17, outputs=("y", "z")):
    return graph(nodes, {"x": shape}, inits or {}, outputs=outputs, opset=opset)


CASES = {
    # torch.split / torch.chunk in CSP, Res2Net, MixNet blocks; outputs feed different layers
    "split_attribute_opset12": lambda: _two_outputs(
        [node("Split", ["x"], ["a", "b"], name="split", axis=1, split=[1, 3]),
         node("Relu", ["a"], ["y"], name="relu"), node("Sigmoid", ["b"], ["z"], name="sig")],
        opset=12),
    "split_sizes_input_height": lambda: _two_outputs(
        [node("Split", ["x", "sz"], ["y", "z"], name="split", axis=2)], {"sz": i64(4, 5)}),
    "split_num_outputs_uneven": lambda: graph(
        [node("Split", ["x"], ["a", "b", "c"], name="split", axis=3, num_outputs=3),
         node("Concat", ["c", "a"], ["ca"], name="cat", axis=3),
         node("Conv", ["ca", "w"], ["y"], name="conv")],
        {"x": X4}, {"w": _w(3, 4, 3, 3)}, outputs=("y", "b"), opset=18),
    "split_equal_channels_csp": lambda: graph(
        [node("Split", ["x"], ["a", "b"], name="chunk", axis=1),
         node("Conv", ["b", "w"], ["bc"], name="conv", pads=[1, 1, 1, 1]),
         node("Concat", ["a", "bc"], ["y"], name="cat", axis=1)],
        {"x": X4}, {"w": _w(2, 2, 3, 3)}),
    # ECA / SE: a gate broadcast back over the feature map (expand_as)
    "expand_gate_static_batch": lambda: graph(
        [node("GlobalAveragePool", ["x"], ["g"], name="gap"),
         node("Expand", ["g", "shape"], ["e"], name="expand"),
         node("Mul", ["x", "e"], ["y"], name="gate")], {"x": X4}, {"shape": i64(*X4)}),
    "expand_lower_rank_shape": lambda: graph(
        [node("GlobalAveragePool", ["x"], ["g"], name="gap"),
         node("Expand", ["g", "shape"], ["y"], name="expand")], {"x": X4},
        {"shape": i64(9, 1)}),
    "expand_as_dynamic_batch": lambda: graph(
        [node("GlobalAveragePool", ["x"], ["g"], name="gap"),
         node("Sigmoid", ["g"], ["s"], name="sig"),
         node("Shape", ["x"], ["sh"], name="shape"),
         node("Expand", ["s", "sh"], ["y"], name="expand_as")],
        {"x": ("batch",) + X4[1:]}),
    # masks: comparisons with constants, Where with constant and computed operands
    "where_mask_from_comparison": lambda: graph(
        [node("Greater", ["x", "t"], ["m"], name="gt"),
         node("Where", ["m", "x", "fill"], ["y"], name="where")],
        {"x": X4}, {"t": f32(0.3), "fill": _w(1, 4, 1, 1)}),
    "where_constant_condition_less_first": lambda: graph(
        [node("Less", ["t", "x"], ["m"], name="lt"),  # t < x, the constant first
         node("Neg", ["x"], ["n"], name="neg"),
         node("Where", ["m", "n", "x"], ["w"], name="where_computed"),
         node("Where", ["cm", "w", "zero"], ["y"], name="where_const_cond")],
        {"x": X4}, {"t": f32(-0.2), "cm": RNG_BOOL(1, 1, 9, 10), "zero": f32(0)}),
    "equal_and_less_or_equal": lambda: graph(
        [node("Floor", ["x"], ["f"], name="floor"),
         node("Equal", ["f", "zero"], ["e"], name="eq"),
         node("LessOrEqual", ["x", "half"], ["le"], name="le"),
         node("Where", ["e", "x", "one"], ["a"], name="w1"),
         node("Where", ["le", "a", "x"], ["y"], name="w2")],
        {"x": X4}, {"zero": f32(0), "half": f32(0.5), "one": f32(1)}, opset=17),
    # attention: scores and weighted sums between two computed tensors
    "matmul_two_tensors_attention": lambda: graph(
        [node("Transpose", ["x"], ["kt"], name="keys_t", perm=[0, 1, 3, 2]),
         node("MatMul", ["x", "kt"], ["s"], name="scores"),
         node("Softmax", ["s"], ["p"], name="softmax", axis=-1),
         node("MatMul", ["p", "x"], ["y"], name="weighted")], {"x": X4}),
    "einsum_two_tensors": lambda: graph(
        [node("Relu", ["x"], ["r"], name="relu"),
         node("Einsum", ["x", "r"], ["y"], name="einsum", equation="bhid,bhjd->bhij")],
        {"x": X4}, opset=17),
    # activations as exporters write them
    "mish_op": lambda: single("Mish", X4, opset=18),
    "mish_softplus_tanh_fused": lambda: graph(
        [node("Softplus", ["x"], ["sp"], name="softplus"), node("Tanh", ["sp"], ["t"], name="tanh"),
         node("Mul", ["x", "t"], ["y"], name="mul")], {"x": X4}),
    "hard_swish_relu6_div_fused": lambda: graph(
        [node("Add", ["x", "three"], ["a"], name="add3"),
         node("Clip", ["a", "lo", "hi"], ["c"], name="relu6"),
         node("Div", ["c", "six"], ["d"], name="div6"),
         node("Mul", ["x", "d"], ["y"], name="mul")],
        {"x": X4}, {"three": f32(3), "lo": f32(0), "hi": f32(6), "six": f32(6)}),
    "hard_swish_mul_then_sixth_fused": lambda: graph(
        [node("Add", ["three", "x"], ["a"], name="add3"),
         node("Clip", ["a", "lo", "hi"], ["c"], name="relu6"),
         node("Mul", ["c", "x"], ["m"], name="mul"),
         node("Mul", ["m", "sixth"], ["y"], name="sixth")],
        {"x": X4}, {"three": f32(3), "lo": f32(0), "hi": f32(6), "sixth": f32(1 / 6)}),
    "hard_swish_hard_sigmoid_mul_fused": lambda: graph(
        [node("HardSigmoid", ["x"], ["h"], name="hsig", alpha=1 / 6, beta=0.5),
         node("Mul", ["x", "h"], ["y"], name="mul")], {"x": X4}),
    "hard_sigmoid_onnx_default_slope": lambda: single("HardSigmoid", X4),
    # Resize (opset 18 axes; exclude_outside is moot for linear)
    "resize_axes_spatial_scales": lambda: single(
        "Resize", X4, {"s": f32(2, 3)}, inputs=["", "s"], mode="linear", axes=[2, 3],
        opset=18),
    "resize_axes_sizes_negative": lambda: single(
        "Resize", X4, {"sz": i64(18, 20)}, inputs=["", "", "sz"], mode="nearest",
        axes=[-2, -1], opset=18),
    # cubic with exclude_outside (taps outside the input dropped, the rest renormalized)
    "resize_cubic_exclude_outside": lambda: single(
        "Resize", X4, {"s": f32(1, 1, 2, 2)}, inputs=["", "s"], mode="cubic",
        exclude_outside=1),
    "resize_cubic_exclude_outside_align_corners_down": lambda: single(
        "Resize", X4, {"s": f32(1, 1, 0.5, 1.5)}, inputs=["", "s"], mode="cubic",
        exclude_outside=1, coordinate_transformation_mode="align_corners"),
    # variadic ops
    "max_three_inputs_with_constant": lambda: graph(
        [node("Relu", ["x"], ["r"], name="relu"), node("Neg", ["x"], ["n"], name="neg"),
         node("Max", ["x", "r", "c", "n"], ["y"], name="max4")], {"x": X4},
        {"c": _w(4, 1, 1)}),
    "min_single_input": lambda: graph(
        [node("Min", ["x"], ["m"], name="min1"), node("Tanh", ["m"], ["y"], name="tanh")],
        {"x": X4}),
    "sum_three_and_mean": lambda: graph(
        [node("Relu", ["x"], ["r"], name="relu"), node("Sigmoid", ["x"], ["s"], name="sig"),
         node("Sum", ["x", "r", "s"], ["t"], name="sum3"),
         node("Mean", ["t", "x"], ["y"], name="mean2")], {"x": X4}),
    # a class token: a constant, the same for every sample, concatenated to the sequence
    "concat_batch_constant_token": lambda: graph(
        [node("Relu", ["x"], ["r"], name="relu"),
         node("Concat", ["cls", "r"], ["y"], name="with_token", axis=1)],
        {"x": (2, 6, 4)}, {"cls": np.repeat(_w(1, 1, 4), 2, axis=0)}),
    # extra outputs nobody reads
    "layer_norm_unused_mean_invstd": lambda: graph(
        [node("LayerNormalization", ["x", "g", "b"], ["y", "mean", "inv"], name="ln", axis=-1)],
        {"x": X4}, {"g": _w(10), "b": _w(10)}),
    "maxpool_unused_indices": lambda: graph(
        [node("MaxPool", ["x"], ["y", "idx"], name="pool", kernel_shape=[2, 2], strides=[2, 2])],
        {"x": X4}),
    # shape arithmetic: TF-style "same" pads from an intermediate size (needs two rounds of
    # folding: the conv's output shape is known only once the first pads are folded)
    "tf_same_pads_from_intermediate_size": lambda: _tf_same_chain(("batch",) + X4[1:]),
    # channel shuffle with a dynamic batch: view(b, g, c // g, h, w)
    "channel_shuffle_dynamic_batch": lambda: _channel_shuffle(("batch", 4, 6, 5)),
}


def RNG_BOOL(*shape):
    return np.random.default_rng(5).random(shape) > 0.5


def _tf_same_pad_nodes(src, prefix, kernel, stride, axis_h=2):
    """Pads computed from the runtime size of `src` as timm's `pad_same` writes them:
    max((ceil(n / s) - 1) * s + k - n, 0), split before/after; then Pad."""
    nodes, inits = [], {}
    parts = []
    for axis in (axis_h, axis_h + 1):
        n = f"{prefix}_n{axis}"
        nodes += [node("Shape", [src], [f"{prefix}_sh{axis}"], name=f"{prefix}_shape{axis}"),
                  node("Gather", [f"{prefix}_sh{axis}", f"{prefix}_i{axis}"], [n],
                       name=f"{prefix}_gather{axis}", axis=0),
                  node("Add", [n, f"{prefix}_sm1"], [f"{prefix}_a{axis}"], name=f"{prefix}_add{axis}"),
                  node("Div", [f"{prefix}_a{axis}", f"{prefix}_s"], [f"{prefix}_q{axis}"],
                       name=f"{prefix}_div{axis}"),  # ceil(n / s) in integers
                  node("Sub", [f"{prefix}_q{axis}", f"{prefix}_one"], [f"{prefix}_q1{axis}"],
                       name=f"{prefix}_sub{axis}"),
                  node("Mul", [f"{prefix}_q1{axis}", f"{prefix}_s"], [f"{prefix}_m{axis}"],
                       name=f"{prefix}_mul{axis}"),
                  node("Add", [f"{prefix}_m{axis}", f"{prefix}_k"], [f"{prefix}_mk{axis}"],
                       name=f"{prefix}_addk{axis}"),
                  node("Sub", [f"{prefix}_mk{axis}", n], [f"{prefix}_p{axis}"],
                       name=f"{prefix}_subn{axis}"),
                  node("Max", [f"{prefix}_p{axis}", f"{prefix}_zero"], [f"{prefix}_t{axis}"],
                       name=f"{prefix}_max{axis}"),
                  node("Div", [f"{prefix}_t{axis}", f"{prefix}_two"], [f"{prefix}_b{axis}"],
                       name=f"{prefix}_half{axis}"),
                  node("Sub", [f"{prefix}_t{axis}", f"{prefix}_b{axis}"], [f"{prefix}_e{axis}"],
                       name=f"{prefix}_rest{axis}")]
        inits[f"{prefix}_i{axis}"] = np.asarray(axis, np.int64)
        parts.append((f"{prefix}_b{axis}", f"{prefix}_e{axis}"))
    inits.update({f"{prefix}_sm1": np.asarray(stride - 1, np.int64),
                  f"{prefix}_s": np.asarray(stride, np.int64),
                  f"{prefix}_one": np.asarray(1, np.int64), f"{prefix}_k": np.asarray(kernel, np.int64),
                  f"{prefix}_zero": np.asarray(0, np.int64), f"{prefix}_two": np.asarray(2, np.int64),
                  f"{prefix}_z4": i64(0, 0, 0, 0), f"{prefix}_ax": i64(0)})
    pads = []
    for which in (0, 1):
        for part in parts:
            pads.append(f"{prefix}_u{part[which]}")
            nodes.append(node("Unsqueeze", [part[which], f"{prefix}_ax"], [pads[-1]],
                              name=f"{prefix}_unsq_{part[which]}"))
    nodes.append(node("Concat", [f"{prefix}_z4"[:0] or pads[0], pads[1]], [f"{prefix}_begin"],
                      name=f"{prefix}_cat_begin", axis=0))
    nodes.append(node("Concat", [pads[2], pads[3]], [f"{prefix}_end"], name=f"{prefix}_cat_end",
                      axis=0))
    inits[f"{prefix}_z2"] = i64(0, 0)
    nodes.append(node("Concat", [f"{prefix}_z2", f"{prefix}_begin", f"{prefix}_z2",
                                 f"{prefix}_end"], [f"{prefix}_pads"], name=f"{prefix}_cat", axis=0))
    nodes.append(node("Pad", [src, f"{prefix}_pads"], [f"{prefix}_padded"], name=f"{prefix}_pad"))
    return nodes, inits


def _tf_same_chain(shape):
    nodes1, inits1 = _tf_same_pad_nodes("x", "p1", 3, 2)
    nodes2, inits2 = _tf_same_pad_nodes("c1", "p2", 3, 2)
    nodes = nodes1 + [node("Conv", ["p1_padded", "w1"], ["c1"], name="conv1", strides=[2, 2])]
    nodes += nodes2 + [node("Conv", ["p2_padded", "w2"], ["y"], name="conv2", strides=[2, 2])]
    return graph(nodes, {"x": shape}, {**inits1, **inits2, "w1": _w(5, 4, 3, 3),
                                       "w2": _w(3, 5, 3, 3)}, opset=13)


def _channel_shuffle(shape, groups=2):
    """Reshape(b, g, c // g, h, w) -> Transpose(0, 2, 1, 3, 4) -> Reshape(b, c, h, w), with
    b read from Shape (a dynamic batch) and c from the static channels."""
    return graph(
        [node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         node("Shape", ["c"], ["sh"], name="shape"),
         node("Gather", ["sh", "i0"], ["b"], name="batch", axis=0),
         node("Gather", ["sh", "i1"], ["ch"], name="channels", axis=0),
         node("Div", ["ch", "g"], ["cg"], name="per_group"),
         node("Unsqueeze", ["b", "ax"], ["b1"], name="b1"),
         node("Unsqueeze", ["cg", "ax"], ["cg1"], name="cg1"),
         node("Concat", ["b1", "g1", "cg1", "hw"], ["target"], name="target", axis=0),
         node("Reshape", ["c", "target"], ["r"], name="view"),
         node("Transpose", ["r"], ["t"], name="shuffle", perm=[0, 2, 1, 3, 4]),
         node("Concat", ["b1", "minus1", "hw"], ["back"], name="back_shape", axis=0),
         node("Reshape", ["t", "back"], ["y"], name="merge")],
        {"x": shape}, {"w": _w(4, shape[1], 3, 3), "i0": np.asarray(0, np.int64),
                       "i1": np.asarray(1, np.int64), "g": np.asarray(groups, np.int64),
                       "g1": i64(groups), "ax": i64(0), "hw": i64(*shape[2:]),
                       "minus1": i64(-1)})


@pytest.fixture(scope="module")
def protos():
    return {name: build() for name, build in CASES.items()}


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name", list(CASES))
def test_pattern_matches_onnxruntime(name, data_format, protos):
    proto = protos[name]
    model = kc.import_onnx(proto, data_format=data_format, verify=False)
    report = kc.verify_import(model, proto, data_format=data_format)
    assert report.passed, report.summary()
    assert all(e.informative for e in report.outputs.values()), report.summary()
    assert report.worst <= RTOL_SCALE * 10, report.summary()
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)


FUSED = {"mish_softplus_tanh_fused": "mish", "hard_swish_relu6_div_fused": "hard_silu",
         "hard_swish_mul_then_sixth_fused": "hard_silu",
         "hard_swish_hard_sigmoid_mul_fused": "hard_silu"}


@pytest.mark.parametrize("name", list(FUSED))
def test_activation_patterns_become_one_layer(name, protos):
    model = kc.import_onnx(protos[name], verify=False)
    (layer,) = model.layers[1:]
    assert isinstance(layer, keras.layers.Activation)
    assert keras.activations.serialize(layer.activation) == FUSED[name]


def test_split_outputs_are_slices_on_the_moved_axis(protos):
    model = kc.import_onnx(protos["split_equal_channels_csp"], verify=False)
    slices = [layer for layer in model.layers if type(layer).__name__ == "Slice"]
    # channels last: the split axis 1 is Keras axis 3
    assert sorted((s.begin, s.end) for s in slices) == [([0, 0, 0], [None, None, 2]),
                                                  ([0, 0, 2], [None, None, 4])]
    assert not any(isinstance(layer, keras.layers.Permute) for layer in model.layers)


@pytest.mark.parametrize("name", ["expand_as_dynamic_batch", "tf_same_pads_from_intermediate_size",
                                  "channel_shuffle_dynamic_batch"])
def test_dynamic_batch_kept_symbolic(name, protos):
    """Shape arithmetic over the batch becomes layers over the other axes: the model takes
    any batch size, and matches onnxruntime at two of them."""
    import onnxruntime as ort

    proto = protos[name]
    model = kc.import_onnx(proto, verify=False)
    assert model.inputs[0].shape[0] is None
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]]
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, *dims)).astype(np.float32)
        expected = session.run(None, {"x": x})[0]
        got = keras.ops.convert_to_numpy(model(np.moveaxis(x, 1, -1)))
        got = np.moveaxis(got, -1, 1) if got.ndim > 2 else got
        np.testing.assert_allclose(got, expected, atol=RTOL_SCALE * np.abs(expected).max())


def test_fixed_point_folding_needs_more_than_one_round(protos):
    """The second conv's pads read the first conv's output size: one round of folding
    leaves them computed."""
    from keras_convx.importer import frontend

    rounds = []
    original = frontend._fold

    def counting(*args):
        rounds.append(1)
        return original(*args)

    frontend._fold, kept = counting, None
    try:
        kept = frontend.read(protos["tf_same_pads_from_intermediate_size"])
    finally:
        frontend._fold = original
    assert len(rounds) >= 3  # two that fold, one that finds nothing left
    assert {n.op_type for n in kept.nodes} == {"Pad", "Conv"}, [n.op_type for n in kept.nodes]


def test_concat_constant_varying_over_the_batch_refused_by_name():
    proto = graph([node("Concat", ["c", "x"], ["y"], name="the_concat", axis=1)],
                  {"x": (2, 6, 4)}, {"c": _w(2, 1, 4)})
    with pytest.raises(UnsupportedOps, match=r"the_concat \(Concat\): constant input of shape "
                                             r"\[2, 1, 4\] differs between samples"):
        kc.import_onnx(proto, verify=False)


def test_batch_value_arithmetic_is_still_refused_by_name():
    """A reshape to twice the batch truly depends on its value."""
    proto = graph(
        [node("Shape", ["x"], ["sh"], name="shape"),
         node("Gather", ["sh", "i0"], ["b"], name="batch", axis=0),
         node("Mul", ["b", "two"], ["b2"], name="double"),
         node("Unsqueeze", ["b2", "ax"], ["b21"], name="b21"),
         node("Concat", ["b21", "rest"], ["target"], name="target", axis=0),
         node("Reshape", ["x", "target"], ["y"], name="the_reshape")],
        {"x": ("batch", 4, 6, 10)}, {"i0": np.asarray(0, np.int64), "two": np.asarray(2, np.int64),
                                     "ax": i64(0), "rest": i64(2, 6, 10)})
    with pytest.raises(UnsupportedOps, match=r"the_reshape \(Reshape\).*dynamic batch size"):
        kc.import_onnx(proto, verify=False)


def test_opset_range_comes_from_onnxruntime():
    oldest, newest, newest_ir = supported_range()
    assert (oldest, newest) == (7, 26) and newest_ir == 13  # onnxruntime 1.31
    proto = single("Relu", X4, opset=26)
    proto.ir_version = 13
    model = kc.import_onnx(proto, verify=False)
    assert kc.verify_import(model, proto).passed
    # onnx's helper writes its newest opset and IR version by default
    latest = helper.make_model(proto.graph)
    assert latest.opset_import[0].version == onnx.defs.onnx_opset_version()
    with pytest.raises(OnnxImportError) as info:
        kc.import_onnx(latest, verify=False)
    message = str(info.value)
    for part in (f"opset {latest.opset_import[0].version} at IR version {latest.ir_version}",
                 "opsets 7..26", "IR version <= 13", "version_converter", "re-export"):
        assert part in message, message


# ---- layout inference: export -> import keeps Keras's NHWC signature -------------------

def _signature_round_trip(model, path):
    """Exported with keras_convx's defaults (NHWC in and out, a Transpose or a one-channel
    Reshape inside), imported: the same input and output shapes, no Permute, the same
    values, and verification against onnxruntime passes."""
    from helpers import assert_close

    kc.export_onnx(model, path, verify=False)
    back = kc.import_onnx(path, verify=False)
    assert tuple(back.input.shape) == tuple(model.input.shape)
    assert tuple(back.output.shape) == tuple(model.output.shape)
    assert not any(isinstance(layer, keras.layers.Permute) for layer in back.layers)
    x = np.random.default_rng(2).standard_normal((2,) + tuple(model.input.shape[1:]))
    x = x.astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert_close(back(x, training=False), expected, RTOL_SCALE)
    # every tensor, logits before a softmax included, against onnxruntime
    report = kc.verify_import(back, onnx.load(path))
    assert report.passed and len(report.tensors) >= 5, report.summary()
    return back


@pytest.mark.parametrize("name", ["EfficientNetB0"])
def test_applications_export_import_keep_nhwc_signature(name, tmp_path):
    """EfficientNetB0 starts with Rescaling and Normalization: the input is moved to NCHW
    only after them (plain inputs: the zoo round trips of test_import.py)."""
    if keras.backend.backend() == "jax":
        pytest.skip("JAX compiles each random initializer of the build (CI time)")
    from test_import import _random_batchnorm

    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3),
                                              classifier_activation=None)
    _random_batchnorm(model)
    _signature_round_trip(model, str(tmp_path / f"{name}.onnx"))


def test_nhwc_input_kept_only_when_every_reader_moves_it():
    """An input read both by a Transpose to NCHW and by a Relu in its own order stays in
    ONNX's layout (NCHW taken as N, C, H, W -> channels last)."""
    proto = graph([node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
                   node("Conv", ["t", "w"], ["y"], name="conv"),
                   node("Relu", ["x"], ["z"], name="relu")],
                  {"x": (2, 9, 10, 4)}, {"w": _w(3, 4, 3, 3)}, outputs=("y", "z"))
    model = kc.import_onnx(proto, verify=False)
    assert tuple(model.inputs[0].shape) == (None, 10, 4, 9)
    assert kc.verify_import(model, proto).passed
    kept = graph([node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
                  node("Conv", ["t", "w"], ["c"], name="conv"),
                  node("Transpose", ["c"], ["y"], name="to_nhwc", perm=[0, 2, 3, 1])],
                 {"x": (2, 9, 10, 4)}, {"w": _w(3, 4, 3, 3)})
    model = kc.import_onnx(kept, verify=False)
    assert tuple(model.inputs[0].shape) == (None, 9, 10, 4)
    assert tuple(model.outputs[0].shape) == (None, 7, 8, 3)
    assert kc.verify_import(model, kept).passed


@pytest.mark.parametrize("name", ["where_mask_from_comparison", "where_constant_condition_less_first",
                                  "equal_and_less_or_equal", "matmul_two_tensors_attention",
                                  "einsum_two_tensors", "expand_lower_rank_shape",
                                  "hard_sigmoid_onnx_default_slope", "split_num_outputs_uneven",
                                  "concat_batch_constant_token", "resize_cubic_exclude_outside"])
def test_imported_layers_export_again(name, protos, tmp_path):
    """Where, comparisons, products and broadcasts go back to ONNX and verify."""
    model = kc.import_onnx(protos[name], verify=False)
    report = kc.export_onnx(model, str(tmp_path / f"{name}.onnx"))
    assert report.passed, report.verify.summary()


def _new_layers_graph():
    """One graph using every layer the issue-24 conversions added: a comparison, Where with
    a constant, Einsum, BroadcastTo, MatMul (leading axes that broadcast), a rounding
    UnaryOperation, BatchConstant and Split's Slices."""
    cls = np.repeat(_w(1, 3, 1, 4), 2, axis=0)
    return graph(
        [node("Relu", ["x"], ["r"], name="relu"),
         node("Greater", ["x", "t"], ["g"], name="gt"),
         node("Where", ["g", "x", "fill"], ["w"], name="where"),
         node("Einsum", ["w", "r"], ["e"], name="einsum", equation="bij,bkj->bik"),
         node("MatMul", ["e", "w"], ["m"], name="matmul_einsum"),
         node("Unsqueeze", ["m", "ax1"], ["u"], name="unsq"),
         node("Expand", ["u", "shape"], ["v"], name="expand"),
         node("Transpose", ["v"], ["k"], name="tr", perm=[0, 1, 3, 2]),
         node("MatMul", ["u", "k"], ["mm"], name="matmul_broadcast"),
         node("Floor", ["mm"], ["f"], name="floor"),
         node("Concat", ["cls", "f"], ["c"], name="with_token", axis=2),
         node("Split", ["c", "sizes"], ["y", "z"], name="split", axis=2)],
        {"x": (2, 4, 6)}, {"t": f32(0.1), "fill": _w(1, 4, 1), "ax1": i64(1),
                           "shape": i64(2, 3, 4, 6), "cls": cls, "sizes": i64(2, 3)},
        outputs=("y", "z"), opset=17)


def test_new_layers_keep_the_layer_contract(tmp_path):
    """Config round trip, compute_output_shape = the real shape, and a `.keras` file that
    a fresh process (safe_mode, only `import keras_convx`) loads to identical outputs."""
    import os
    import subprocess
    import sys

    from test_import import ROOT

    proto = _new_layers_graph()
    model = kc.import_onnx(proto, verify=False)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"ConstantOperation", "Where", "Einsum", "BroadcastTo", "MatMul", "UnaryOperation",
            "BatchConstant", "Slice"} <= kinds, kinds
    assert kc.verify_import(model, proto).passed
    x = np.random.default_rng(4).standard_normal((2, 6, 4)).astype(np.float32)
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers[1:]])
    for layer, value in zip(model.layers[1:], probe(x)):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config, layer.name
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        real = [tuple(t.shape) for t in keras.tree.flatten(
            keras.Model(model.inputs, inputs)(x))]
        shape = layer.compute_output_shape(real if len(real) > 1 else real[0])
        assert tuple(shape) == tuple(value.shape), (layer.name, shape, value.shape)
    expected = [keras.ops.convert_to_numpy(t) for t in model(x)]
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    script = (
        "import keras, numpy as np, keras_convx\n"
        f"model = keras.saving.load_model({str(tmp_path / 'm.keras')!r}, safe_mode=True)\n"
        f"ys = model(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"np.savez({str(tmp_path / 'y.npz')!r}, *[keras.ops.convert_to_numpy(y) for y in ys])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = np.load(tmp_path / "y.npz")
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(loaded[f"arr_{i}"], want)
