"""Training across processes: two local JAX processes (gloo CPU collectives) train
keras_convx layers with DataParallel and ModelParallel and end with the weights a single
process gets; the trained model then exports and verifies (tests/distributed_worker.py)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import onnx
import pytest

from helpers import BACKEND

HERE = os.path.dirname(os.path.abspath(__file__))


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(mode, count, out):
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=os.path.dirname(HERE))
    port = str(_port())
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "distributed_worker.py"), mode,
                               str(i), str(count), port, str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for i in range(count)]
    for p in procs:
        log, _ = p.communicate(timeout=300)
        assert p.returncode == 0, log[-3000:]


@pytest.mark.skipif(BACKEND != "torch", reason="the workers are JAX processes; run once")
def test_two_processes_train_like_one_and_export(tmp_path):
    pytest.importorskip("jax")
    _run("data", 1, tmp_path)
    single = np.load(tmp_path / "weights-data-1.npz")
    initial = np.load(tmp_path / "weights-initial.npz")
    assert all(np.max(np.abs(single[k] - initial[k])) > 1e-4 for k in single.files)  # trained
    for mode in ("data", "model"):
        _run(mode, 2, tmp_path)
        multi = np.load(tmp_path / f"weights-{mode}-2.npz")
        for k in single.files:
            scale = np.max(np.abs(single[k]))
            assert np.max(np.abs(multi[k] - single[k])) <= 1e-5 * scale, (mode, k)
        # the exported model carries the trained weights and verified in the worker
        graph = onnx.load(str(tmp_path / f"{mode}.onnx"))
        assert any(p.key == "keras_convx.verification" for p in graph.metadata_props)
    specs = json.loads((tmp_path / "sharding-model.json").read_text())
    # conv kernels split on their output axis; the depthwise kernel (last axis 1) is not
    assert "'model'" in specs["conv2d/kernel"] and "'model'" in specs["conv2d_1/kernel"]
    assert "'model'" not in specs["depthwise_conv2d/kernel"]
    assert "'model'" not in json.loads((tmp_path / "sharding-data.json").read_text())[
        "conv2d/kernel"]
