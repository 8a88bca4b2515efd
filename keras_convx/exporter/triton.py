"""A Triton Inference Server model repository from an exported ONNX file.

`DIR/<name>/1/model.onnx` (with its `.data` file, if any) and `DIR/<name>/config.pbtxt`:
the `onnxruntime` backend, input and output names, data types and dims read from the graph
itself, and `max_batch_size` with dynamic batching when the graph's batch is dynamic (a
static batch gives `max_batch_size: 0` and dims that include it), so the config can't
disagree with the file. The config is parsed with Triton's own `ModelConfig` protobuf (from
`tritonclient`, when installed) before anything is written.
"""

import os
import re
import shutil

from keras_convx.utils.files import atomic_path, write_atomic

DATA_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16",
              5: "TYPE_INT16", 6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL",
              10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32", 13: "TYPE_UINT64",
              16: "TYPE_BF16"}
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class TritonError(ValueError):
    """The graph can't be served as asked (its batch, a dtype, the model name)."""


def _tensors(onnx_model):
    weights = {t.name for t in onnx_model.graph.initializer}
    out = []
    for kind, values in (("input", [v for v in onnx_model.graph.input
                                    if v.name not in weights]),
                         ("output", onnx_model.graph.output)):
        for v in values:
            tensor = v.type.tensor_type
            if tensor.elem_type not in DATA_TYPES:
                raise TritonError(f"--triton-repo: {kind} {v.name!r} has ONNX type "
                                  f"{tensor.elem_type}, which Triton has no TYPE_ for")
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
            batch = bool(tensor.shape.dim) and not tensor.shape.dim[0].HasField("dim_value")
            out.append((kind, v.name, DATA_TYPES[tensor.elem_type], dims, batch))
    return out


def config_text(onnx_model, name, max_batch_size=8):
    """The config.pbtxt for `onnx_model` served as `name`."""
    tensors = _tensors(onnx_model)
    batched = {b for *_, b in tensors}
    if len(batched) > 1:
        raise TritonError("--triton-repo: some inputs/outputs have a dynamic batch and some "
                          "don't; Triton batches all of them or none")
    dynamic = batched == {True}
    if dynamic and max_batch_size < 1:
        raise TritonError(f"--triton-repo: max_batch_size must be >= 1 for a dynamic batch, "
                          f"got {max_batch_size}")
    lines = [f'name: "{name}"', 'backend: "onnxruntime"',
             f"max_batch_size: {max_batch_size if dynamic else 0}"]
    for kind in ("input", "output"):
        entries = []
        for k, tensor, dtype, dims, _ in tensors:
            if k != kind:
                continue
            shown = dims[1:] if dynamic else dims
            entries.append(f'  {{\n    name: "{tensor}"\n    data_type: {dtype}\n'
                           f'    dims: [ {", ".join(str(d) for d in shown)} ]\n  }}')
        lines.append(f"{kind} [\n" + ",\n".join(entries) + "\n]")
    if dynamic:
        lines.append("dynamic_batching { }")
    text = "\n".join(lines) + "\n"
    validate(text)
    return text


def model_config_pb2():
    """Triton's ModelConfig protobuf module from tritonclient, or None when not installed.
    Loaded from its file: `tritonclient.grpc`'s package imports grpc, which the config
    protobuf does not need."""
    import importlib.util

    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "grpc", "model_config_pb2.py")
    if not os.path.exists(path):
        return None
    loaded = importlib.util.spec_from_file_location("keras_convx_triton_model_config", path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def validate(text):
    """Parses config.pbtxt text with Triton's ModelConfig (field names, types, enums);
    without tritonclient, checks the fields this module writes."""
    pb2 = model_config_pb2()
    if pb2 is not None:
        from google.protobuf import text_format

        try:
            return text_format.Parse(text, pb2.ModelConfig())
        except text_format.ParseError as err:
            raise TritonError(f"--triton-repo: Triton's ModelConfig rejects the config: {err}") \
                from None
    for field in ("name:", "backend:", "max_batch_size:", "input [", "output ["):
        if field not in text:
            raise TritonError(f"--triton-repo: config lacks {field!r}")
    types = re.findall(r"data_type: (\w+)", text)
    if not types or any(t not in DATA_TYPES.values() for t in types):
        raise TritonError(f"--triton-repo: data types {types} are not Triton's")
    return None


def write_repository(onnx_path, repo, name=None, max_batch_size=8):
    """Writes `repo/<name>/1/model.onnx` (+ data file) and `repo/<name>/config.pbtxt`;
    returns the model folder. The repository folder is created if missing."""
    import onnx

    name = name or os.path.splitext(os.path.basename(onnx_path))[0]
    if not NAME.match(name):
        raise TritonError(f"--triton-repo: model name {name!r} must be letters, digits, '_', "
                          f"'.' or '-'")
    if os.path.exists(repo) and not os.path.isdir(repo):
        raise TritonError(f"--triton-repo: {repo} is a file, not a folder")
    model = onnx.load(onnx_path, load_external_data=False)
    text = config_text(model, name, max_batch_size)
    folder = os.path.join(repo, name)
    version = os.path.join(folder, "1")
    os.makedirs(version, exist_ok=True)
    data = [t.external_data for t in model.graph.initializer if t.data_location == 1]
    for location in {kv.value for entries in data for kv in entries if kv.key == "location"}:
        with atomic_path(os.path.join(version, location)) as tmp:
            shutil.copyfile(os.path.join(os.path.dirname(onnx_path), location), tmp)
    with atomic_path(os.path.join(version, "model.onnx")) as tmp:
        shutil.copyfile(onnx_path, tmp)
    write_atomic(os.path.join(folder, "config.pbtxt"), text)
    return folder
