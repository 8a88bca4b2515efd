"""Untrusted .onnx files: external data outside the model's folder, tensors larger than
their data, cycles, unknown domains and absurd shapes give a clear OnnxImportError naming
the node or tensor; a fuzz run of mutated graphs never crashes, hangs or allocates wildly."""

import collections
import copy
import os
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import keras_convx as kc
from keras_convx.importer import OnnxImportError, frontend
from test_import import CASES, X4, _w, graph, i64, single

# Every fuzz mutant must be decided (model or error) within this many seconds.
MUTANT_SECONDS = 5.0
FUZZ_MUTANTS = 1200
FUZZ_BUILT = 40  # mutants that pass the front end and are built and verified (a sample)


def _conv_with_external(tmp_path, location, length=None):
    """A conv model whose kernel lives in an external file at `location`."""
    proto = single("Conv", X4, {"w": _w(3, 4, 3, 3)})
    tensor = proto.graph.initializer[0]
    data = tensor.raw_data
    (tmp_path / "weights.bin").write_bytes(data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": "0", "length": str(length or len(data))}
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


def test_external_data_inside_the_folder_loads(tmp_path):
    path = _conv_with_external(tmp_path, "weights.bin")
    (tmp_path / "model" / "weights.bin").write_bytes((tmp_path / "weights.bin").read_bytes())
    model = kc.import_onnx(path, verify=False)
    proto = onnx.load(str(path))  # onnx's own loader, for the reference
    assert kc.verify_import(model, proto).passed


@pytest.mark.parametrize("location", ["../weights.bin", "/etc/passwd", "sub/../../weights.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    path = _conv_with_external(tmp_path, location)
    with pytest.raises(OnnxImportError, match=r"initializer 'w': external data location .* is "
                                              r"outside the model's folder"):
        kc.import_onnx(path, verify=False)


def test_onnx_itself_refuses_the_traversal_too(tmp_path):
    """The same files through onnx's own checks (CVE-2024-27318 class): refused as well."""
    path = _conv_with_external(tmp_path, "../weights.bin")
    with pytest.raises(Exception, match="(?i)(outside|directory|not allowed|invalid)"):
        onnx.checker.check_model(str(path))
    with pytest.raises(Exception):
        onnx.load(str(path))


def test_external_data_range_past_the_file_is_refused(tmp_path):
    path = _conv_with_external(tmp_path, "weights.bin", length=10 ** 6)
    (tmp_path / "model" / "weights.bin").write_bytes((tmp_path / "weights.bin").read_bytes())
    with pytest.raises(OnnxImportError, match=r"initializer 'w': external data range"):
        kc.import_onnx(path, verify=False)


def test_external_data_needs_a_path(tmp_path):
    path = _conv_with_external(tmp_path, "weights.bin")
    with pytest.raises(OnnxImportError, match=r"pass the model's path"):
        kc.import_onnx(onnx.load(str(path), load_external_data=False), verify=False)


def test_tensor_larger_than_its_data_is_refused():
    proto = single("Conv", X4, {"w": _w(3, 4, 3, 3)})
    proto.graph.initializer[0].dims[0] = 300  # claims 100x the bytes it holds
    with pytest.raises(OnnxImportError, match=r"initializer 'w': shape \[300, 4, 3, 3\] needs "
                                              r"43200 bytes, the data holds 432"):
        kc.import_onnx(proto, verify=False)


def test_absurd_initializer_shape_is_refused_before_allocation():
    proto = single("Conv", X4, {"w": _w(3, 4, 3, 3)})
    del proto.graph.initializer[0].dims[:]
    proto.graph.initializer[0].dims.extend([10 ** 6, 10 ** 6, 3, 3])
    with pytest.raises(OnnxImportError, match=r"initializer 'w': shape .* elements, more than"):
        kc.import_onnx(proto, verify=False)


def test_cycle_is_refused_with_node_names():
    proto = graph([helper.make_node("Relu", ["x", "b"], ["a"], name="first"),
                   helper.make_node("Relu", ["a"], ["b"], name="second"),
                   helper.make_node("Relu", ["b"], ["y"], name="third")], {"x": X4})
    with pytest.raises(OnnxImportError, match=r"cycle through node 'first' \(Relu\), node "
                                              r"'second'"):
        kc.import_onnx(proto, verify=False)


def test_undefined_input_and_duplicate_output_are_refused():
    proto = graph([helper.make_node("Relu", ["nowhere"], ["y"], name="lost")], {"x": X4})
    with pytest.raises(OnnxImportError, match=r"node 'lost' \(Relu\): input 'nowhere' is not"):
        kc.import_onnx(proto, verify=False)
    proto = graph([helper.make_node("Relu", ["x"], ["y"], name="one"),
                   helper.make_node("Tanh", ["x"], ["y"], name="two")], {"x": X4})
    with pytest.raises(OnnxImportError, match=r"node 'two' \(Tanh\): output 'y' is already "
                                              r"produced by node 'one'"):
        kc.import_onnx(proto, verify=False)


def test_unknown_domain_is_named():
    proto = graph([helper.make_node("Relu", ["x"], ["y"], name="custom", domain="evil.ops")],
                  {"x": X4}, domains=["evil.ops"])
    with pytest.raises(OnnxImportError, match=r"custom \(Relu\): unknown domain 'evil.ops'"):
        kc.import_onnx(proto, verify=False)


@pytest.mark.parametrize("dims,pattern", [
    ((2, 4, 10 ** 9, 10), r"graph input 'x': shape .* dimensions in \[1, 16777216\]"),
    ((2, 4, 0, 10), r"graph input 'x': shape .* dimensions in"),
    ((2, 4096, 4096, 4096), r"graph input 'x': shape .* exceeds 268435456 elements"),
])
def test_absurd_input_shapes_are_refused(dims, pattern):
    proto = single("Relu", X4)
    shape = proto.graph.input[0].type.tensor_type.shape
    for d, n in zip(shape.dim, dims):
        d.dim_value = n
    with pytest.raises(OnnxImportError, match=pattern):
        kc.import_onnx(proto, verify=False)


def test_huge_constant_folding_is_refused_before_running():
    proto = graph([helper.make_node("ConstantOfShape", ["s"], ["big"], name="bomb"),
                   helper.make_node("ReduceSum", ["big"], ["total"], name="sum", keepdims=0),
                   helper.make_node("Add", ["x", "total"], ["y"], name="add")],
                  {"x": X4}, {"s": i64(100000, 100000)})
    start = time.perf_counter()
    with pytest.raises(OnnxImportError, match=r"node 'bomb' \(ConstantOfShape\): .*exceeds"):
        kc.import_onnx(proto, verify=False)
    assert time.perf_counter() - start < MUTANT_SECONDS


def test_truncated_and_garbage_files(tmp_path):
    good = single("Relu", X4).SerializeToString()
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xff" * 100)
    for name in ("cut.onnx", "junk.onnx", "missing.onnx"):
        with pytest.raises(OnnxImportError, match=name.replace(".", r"\.")):
            kc.import_onnx(tmp_path / name, verify=False)


# ---- fuzz -------------------------------------------------------------------------------

ATTR_VALUES = [-1, 0, 1, 2, 3, 7, 2 ** 31, -(2 ** 40)]


def _mutate(proto, rng):
    """One random mutation of a copy of `proto`; returns (kind, mutant)."""
    m = copy.deepcopy(proto)
    g = m.graph
    kind = rng.choice(["attribute", "drop_attribute", "initializer_shape",
                       "initializer_data", "initializer_values", "edge", "input_shape",
                       "op_type", "domain"])
    nodes = list(g.node)
    node = nodes[rng.integers(len(nodes))]
    if kind == "attribute" and node.attribute:
        attr = node.attribute[rng.integers(len(node.attribute))]
        if attr.type == onnx.AttributeProto.INTS and attr.ints:
            attr.ints[rng.integers(len(attr.ints))] = int(rng.choice(ATTR_VALUES))
        elif attr.type == onnx.AttributeProto.INT:
            attr.i = int(rng.choice(ATTR_VALUES))
        elif attr.type == onnx.AttributeProto.FLOAT:
            attr.f = float(rng.choice([-1.0, 0.0, 1e30, float("nan")]))
        elif attr.type == onnx.AttributeProto.STRING:
            attr.s = rng.choice([b"", b"reflect", b"SAME_LOWER", b"cubic", b"bogus"])
    elif kind == "drop_attribute" and node.attribute:
        del node.attribute[rng.integers(len(node.attribute))]
    elif kind.startswith("initializer") and g.initializer:
        t = g.initializer[rng.integers(len(g.initializer))]
        if kind == "initializer_shape" and t.dims:
            t.dims[rng.integers(len(t.dims))] = int(rng.choice([0, 1, 2, 5, 10 ** 7]))
        elif kind == "initializer_data":
            t.raw_data = t.raw_data[: len(t.raw_data) // 2]
        else:
            array = numpy_helper.to_array(t).copy()
            if array.size:
                array.reshape(-1)[rng.integers(array.size)] = rng.choice([0, -1, 3, 10 ** 6])
            t.CopyFrom(numpy_helper.from_array(array, t.name))
    elif kind == "edge":
        names = [i.name for i in g.input] + [o for n in nodes for o in n.output] + ["ghost"]
        if node.input:
            node.input[rng.integers(len(node.input))] = str(rng.choice(names))
    elif kind == "input_shape":
        dims = g.input[0].type.tensor_type.shape.dim
        dims[rng.integers(len(dims))].dim_value = int(rng.choice([0, 1, 3, 10 ** 8]))
    elif kind == "op_type":
        node.op_type = str(rng.choice(["Relu", "Conv", "MaxPool", "Resize", "Pad", "Loop",
                                       "Gemm", "Reshape", "Slice"]))
    elif kind == "domain":
        node.domain = str(rng.choice(["", "com.microsoft", "ai.onnx.ml", "x" * 300]))
    return kind, m


def test_fuzz_mutants_give_a_model_or_a_clear_error():
    rng = np.random.default_rng(1234)
    bases = [CASES[name]() for name in sorted(CASES)]
    counts = collections.Counter()
    passed_front_end = []
    for i in range(FUZZ_MUTANTS):
        kind, mutant = _mutate(bases[i % len(bases)], rng)
        start = time.perf_counter()
        try:
            frontend.read(mutant)
        except OnnxImportError as err:
            assert str(err).startswith("import_onnx: "), err
            counts["refused by the front end"] += 1
        else:
            counts["passed the front end"] += 1
            passed_front_end.append((kind, mutant))
        assert time.perf_counter() - start < MUTANT_SECONDS, kind
    # the Keras models: a deterministic sample of the mutants the front end accepted
    step = max(len(passed_front_end) // FUZZ_BUILT, 1)
    for kind, mutant in passed_front_end[::step][:FUZZ_BUILT]:
        try:
            model = kc.import_onnx(mutant, verify=False)
        except OnnxImportError as err:
            assert str(err).startswith("import_onnx: "), err
            counts["built: clear error"] += 1
            continue
        try:
            report = kc.verify_import(model, mutant)
        except Exception:  # onnxruntime itself refuses the graph: nothing to compare with
            counts["built: onnxruntime can't run it"] += 1
            continue
        assert report.passed, (kind, report.summary(), helper.printable_graph(mutant.graph))
        counts["built: matches onnxruntime"] += 1
    print("\nfuzz outcomes:", dict(counts))
    assert sum(counts[k] for k in ("refused by the front end", "passed the front end")) >= 1000
    assert counts["built: matches onnxruntime"] >= 10
