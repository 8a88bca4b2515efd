"""Proving and publishing a staged graph: the ONNX checker at a fraction of its cost, and
the `.failed` files an unproven graph leaves for inspection. The staging folder itself is
the one both directions share (`keras_convx.utils.staging`); what is ONNX's stays here."""

import os

import numpy as np
import onnx

from keras_convx.utils import staging
from keras_convx.verification.report import ExportError


def keep_failed(path, stage, report, external):
    """Keeps the unproven graph for inspection, with its report; returns what was kept.

    `<stem>.failed.onnx`; a graph with external data keeps its folder, `<stem>.failed/`,
    since the model file finds its data file by a relative name.
    """
    return staging.keep_failed(path, stage, report, ".onnx", whole_folder=external)


def check(check, proto):
    """The ONNX checker, with strict shape inference, at a fraction of its cost on big files.

    Shape inference needs the weights' types and shapes only, plus the values of small
    constants (Reshape targets, pads, Resize scales): the checker runs on a copy in which each
    large weight is a graph input of the same type and shape, instead of parsing every weight
    byte again (RetinaNet's 31 MB: 46 ms -> 5 ms). What it would check of a large weight
    itself, that it holds as many bytes as its type and shape need, is checked here.
    """
    if not isinstance(check, bytes):
        onnx.checker.check_model(check, full_check=True)  # external data: checked from disk
        return
    light = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version"):
        if proto.HasField(field):
            setattr(light, field, getattr(proto, field))
    light.opset_import.extend(proto.opset_import)
    graph = light.graph
    graph.name = proto.graph.name
    graph.node.extend(proto.graph.node)
    graph.output.extend(proto.graph.output)
    graph.input.extend(proto.graph.input)
    graph.value_info.extend(proto.graph.value_info)
    light.functions.extend(proto.functions)
    declared = {i.name for i in proto.graph.input}
    for tensor in proto.graph.initializer:
        if len(tensor.raw_data) <= _SMALL_CONSTANT_BYTES:
            graph.initializer.append(tensor)
            continue
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        if len(tensor.raw_data) != itemsize * int(np.prod(tensor.dims, dtype=np.int64)):
            raise ValueError(f"initializer {tensor.name} holds {len(tensor.raw_data)} bytes, "
                             f"its type and shape {list(tensor.dims)} need "
                             f"{itemsize * int(np.prod(tensor.dims, dtype=np.int64))}")
        if tensor.name not in declared:  # (graphs of IR < 4 list weights as inputs)
            graph.input.append(onnx.helper.make_tensor_value_info(
                tensor.name, tensor.data_type, list(tensor.dims)))
    onnx.checker.check_model(light.SerializeToString(), full_check=True)


_SMALL_CONSTANT_BYTES = 4096


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


class Staged(staging.Stage):
    """The export's private staging folder beside `path`: everything is written and proven
    there, and moved in only once proven (named after this process: the next run removes
    it if this one is killed)."""

    def __init__(self, path, external):
        super().__init__(path, ".onnx")
        self.data_name = os.path.basename(path) + ".data"
        self.external = external

    @classmethod
    def of(cls, path, external):
        return cls(path, external)

    def write(self, proto, method):
        """Writes and checks the graph; returns its serialized bytes (the graph alone when
        the weights went to the data file)."""
        if self.external:
            # protobuf can't hold 2 GB: the weights go to `<name>.onnx.data` beside the file
            onnx.save_model(proto, self.tmp, save_as_external_data=True,
                            all_tensors_to_one_file=True, location=self.data_name,
                            size_threshold=1024)
            data, checked = proto.SerializeToString(), self.tmp
        else:
            data = proto.SerializeToString()  # serialized once
            write_file(self.tmp, data)
            checked = data
        try:
            check(checked, proto)
        except Exception as err:
            raise ExportError(f"export ({method}): the ONNX checker rejects the graph: "
                              f"{str(err).strip().splitlines()[0]}") from None
        return data

    def size(self):
        return sum(os.path.getsize(os.path.join(self.folder, f))
                   for f in os.listdir(self.folder))

    def keep_failed(self, report):
        return keep_failed(self.path, self.folder, report, self.external)

    def publish(self):
        super().publish([self.data_name] if self.external else [])  # the data file first
