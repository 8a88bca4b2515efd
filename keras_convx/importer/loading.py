"""Loading an untrusted ONNX file: the file itself, the versions it needs, and each
tensor's claimed shape and data (external data included) checked before it is
materialised."""

import os

import onnx
from onnx import TensorProto, helper, numpy_helper

from keras_convx.importer.limits import MAX_ELEMENTS, elements, fail
from keras_convx.utils.runtime import supported_range

_ITEMSIZE = {TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2,
             TensorProto.BFLOAT16: 2, TensorProto.INT64: 8, TensorProto.INT32: 4,
             TensorProto.INT16: 2, TensorProto.INT8: 1, TensorProto.UINT8: 1,
             TensorProto.UINT16: 2, TensorProto.UINT32: 4, TensorProto.UINT64: 8,
             TensorProto.BOOL: 1}
# The typed repeated field holding each data type when raw_data is absent.
_FIELD = {TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data",
          TensorProto.INT64: "int64_data", TensorProto.UINT64: "uint64_data",
          TensorProto.INT32: "int32_data", TensorProto.INT16: "int32_data",
          TensorProto.INT8: "int32_data", TensorProto.UINT8: "int32_data",
          TensorProto.UINT16: "int32_data", TensorProto.BOOL: "int32_data",
          TensorProto.FLOAT16: "int32_data", TensorProto.BFLOAT16: "int32_data",
          TensorProto.UINT32: "uint64_data"}


def _tensor_label(tensor, where):
    return f"{where} {tensor.name!r}"


def _check_external(tensor, base_dir, where):
    """Refuses external data outside the model's folder (path traversal), missing files
    and ranges past the end of the file; then loads it."""
    label = _tensor_label(tensor, where)
    if base_dir is None:
        fail(f"{label} keeps its data in an external file: pass the model's path (not a "
             f"ModelProto or bytes) so the file can be found next to it")
    info = onnx.external_data_helper.ExternalDataInfo(tensor)
    location = info.location or ""
    base = os.path.realpath(base_dir)
    target = os.path.realpath(os.path.join(base, location))
    if (not location or os.path.isabs(location) or ".." in location.replace("\\", "/").split("/")
            or os.path.commonpath([base, target]) != base):
        fail(f"{label}: external data location {location!r} is outside the model's folder "
             f"{base_dir} (only relative paths inside it are accepted)")
    if not os.path.isfile(target):
        fail(f"{label}: external data file {location!r} does not exist in {base_dir}")
    size = os.path.getsize(target)
    offset = info.offset or 0
    expected = elements(tensor.dims) * _ITEMSIZE.get(tensor.data_type, 0)
    length = info.length if info.length is not None else size - offset
    if offset < 0 or offset + length > size or length != expected:
        fail(f"{label}: external data range offset={offset}, length={length} does not hold "
             f"{expected} bytes of shape {list(tensor.dims)} in {location!r} ({size} bytes)")
    onnx.external_data_helper.load_external_data_for_tensor(tensor, base_dir)
    tensor.data_location = TensorProto.DEFAULT
    del tensor.external_data[:]


def check_tensor(tensor, base_dir, where="initializer"):
    """Checks a TensorProto's claimed shape against its data before materialising it."""
    label = _tensor_label(tensor, where)
    if tensor.data_type not in _ITEMSIZE:
        fail(f"{label}: data type {TensorProto.DataType.Name(tensor.data_type)} is not "
             f"supported (numeric types only)")
    if any(d < 0 for d in tensor.dims):
        fail(f"{label}: negative dimension in shape {list(tensor.dims)}")
    count = elements(tensor.dims)
    if count > MAX_ELEMENTS:
        fail(f"{label}: shape {list(tensor.dims)} has {count} elements, more than the "
             f"{MAX_ELEMENTS} accepted")
    if tensor.data_location == TensorProto.EXTERNAL:
        _check_external(tensor, base_dir, where)
    if tensor.HasField("raw_data") or tensor.raw_data:
        have, want = len(tensor.raw_data), count * _ITEMSIZE[tensor.data_type]
    else:
        have, want = len(getattr(tensor, _FIELD[tensor.data_type])), count
    if have != want:
        fail(f"{label}: shape {list(tensor.dims)} needs {want} "
             f"{'bytes' if tensor.raw_data else 'values'}, the data holds {have}")
    return numpy_helper.to_array(tensor)


def attr_value(attr, node_label, base_dir):
    """A node attribute as a Python value: tensors checked (`check_tensor`), strings
    decoded, subgraphs kept as protos."""
    if attr.type == onnx.AttributeProto.TENSOR:
        return check_tensor(attr.t, base_dir, f"{node_label} attribute {attr.name!r}")
    if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return attr  # subgraphs: the op (If, Loop, Scan) has no conversion
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def load(source):
    """A ModelProto and its folder from a path, bytes or ModelProto; external data is
    loaded only after `check_tensor` accepted its location and range."""
    if isinstance(source, onnx.ModelProto):
        return source, None, None
    if isinstance(source, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(source)), None, None
        except Exception as err:
            fail(f"not a valid ONNX model ({type(err).__name__}: {err})")
    path = os.fspath(source)
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as err:
        fail(f"{path}: not a valid ONNX file ({type(err).__name__}: {str(err)[:200]})")
    return model, os.path.dirname(os.path.abspath(path)), path


def check_versions(opset, ir_version):
    """Refuses an opset or IR version that onnx and the installed onnxruntime don't both
    support (verification runs the file in onnxruntime), naming the fix."""
    oldest, newest, newest_ir = supported_range()
    if opset < oldest:
        fail(f"opset {opset} of the default domain is older than the supported range "
             f"{oldest}..{newest}: convert it with onnx.version_converter.convert_version("
             f"model, {oldest}) or re-export at opset >= {oldest}")
    if opset > newest or ir_version > newest_ir:
        fail(f"opset {opset} at IR version {ir_version} is newer than the installed "
             f"onnxruntime loads (opsets {oldest}..{newest}, IR version <= {newest_ir}): "
             f"convert it with onnx.version_converter.convert_version(model, {newest}) and "
             f"set model.ir_version = {newest_ir}, or re-export at opset <= {newest} (onnx's "
             f"helper.make_model writes its newest opset and IR version unless told)")
