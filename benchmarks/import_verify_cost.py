"""`kc.import_onnx(path, verify=True)` of keras.applications' ResNet50 (96x96, 10 classes,
random weights) with the keras_convx source tree given as argv[1]: the median of three.
RESULTS.md section 21 compares a checkout from before verify_import reused the import's
walk (ce6993c, `git worktree add /tmp/old ce6993c`) with this one.

    KERAS_BACKEND=tensorflow python benchmarks/import_verify_cost.py /tmp/old
    KERAS_BACKEND=tensorflow python benchmarks/import_verify_cost.py .
"""
import os, sys, time, json
root = sys.argv[1]
sys.path.insert(0, root)
import numpy as np, keras
import keras_convx as kc
path = "/tmp/resnet50.onnx"
if not os.path.exists(path):
    m = keras.applications.ResNet50(weights=None, input_shape=(96, 96, 3), classes=10)
    kc.export_onnx(m, path, verify=False)
times = []
for _ in range(3):
    t = time.perf_counter()
    net = kc.import_onnx(path, verify=True)
    times.append(time.perf_counter() - t)
print(json.dumps({"root": root, "import_verify_s": sorted(times)[1], "all": times, "passed": net.import_report.passed}))
