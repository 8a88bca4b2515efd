"""Every keras-convx subcommand run as users run it: a fresh process (`python -m keras_convx`),
no Keras imported beforehand, checking the exit code, the message, that no traceback is
printed and that no stray file appears. (The in-process tests in test_cli.py run after
conftest has imported Keras, which hid an import circle that broke `schema` and every
error path of `inspect`.)"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "wavenet.yaml")

# one backend's pass is enough: the failures these catch (import order, argument handling)
# do not depend on the backend, and each process imports Keras afresh (seconds)
pytestmark = pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "torch",
                                reason="fresh-process CLI runs on the torch pass only")


def cli(cwd, *argv):
    """(exit code, stdout, stderr) of `python -m keras_convx ARGV` in `cwd`."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-m", "keras_convx", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done.returncode, done.stdout, done.stderr


def _relu_conv_onnx(path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"], name="relu")], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), path)


def test_schema_and_inspect_paths(tmp_path):
    code, out, err = cli(tmp_path, "schema")
    assert code == 0 and '"$schema"' in out, err
    code, _, err = cli(tmp_path, "schema", "-o", str(tmp_path / "no" / "s.json"))
    assert code == 2 and "--output" in err
    code, _, err = cli(tmp_path, "inspect", "missing.onnx")
    assert code == 2 and "missing.onnx: no such file" in err
    (tmp_path / "cut.onnx").write_bytes(b"\x08\x07\x12\x04ab")
    code, _, err = cli(tmp_path, "inspect", "cut.onnx")
    assert code == 2 and "cut.onnx" in err and err.count("\n") == 1, err
    _relu_conv_onnx(tmp_path / "tiny.onnx")
    code, out, err = cli(tmp_path, "inspect", "tiny.onnx")
    assert code == 0 and "Conv" in out, err
    assert sorted(os.listdir(tmp_path)) == ["cut.onnx", "tiny.onnx"]


def test_config_commands(tmp_path):
    code, out, err = cli(tmp_path, "validate", CONFIG, "--scale", "t")
    assert code == 0 and "ok" in out, err
    bad = tmp_path / "typo.yaml"
    bad.write_text(open(CONFIG).read().replace("type: Conv1D", "type: Conv1d", 1))
    code, _, err = cli(tmp_path, "validate", str(bad))
    assert code == 2 and "typo.yaml:" in err and "Conv1d" in err, err
    # before any backend import: the typo costs no TensorFlow start-up
    probe = ("import sys\nfrom keras_convx.cli import main\n"
             f"code = main(['validate', {str(bad)!r}])\n"
             "print('HEAVY', code, sorted(m for m in ('keras', 'tensorflow', 'torch', 'jax') "
             "if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert "HEAVY 2 []" in done.stdout, done.stdout + done.stderr
    code, out, err = cli(tmp_path, "build", CONFIG, "--scale", "t")
    assert code == 0 and "Conv1D" in out, err
    code, out, err = cli(tmp_path, "coverage", CONFIG, "--scale", "t")
    assert code == 0, out + err
    assert sorted(os.listdir(tmp_path)) == ["typo.yaml"]


def test_import_export_verify(tmp_path):
    code, _, err = cli(tmp_path, "import", "does/not/exist.onnx")
    assert code == 2 and "does/not/exist.onnx: no such file" in err, err
    _relu_conv_onnx(tmp_path / "tiny.onnx")
    code, out, err = cli(tmp_path, "import", "tiny.onnx", "-o", "tiny.keras")
    assert code == 0 and "wrote tiny.keras" in out and "moved to channels-last" in out, err
    code, out, err = cli(tmp_path, "import", "tiny.onnx", "-o", "nchw.keras", "--layouts",
                         "onnx", "--no-verify")
    assert code == 0 and "wrote nchw.keras" in out and "-> Keras" not in out, out + err
    code, out, err = cli(tmp_path, "export", "tiny.keras", "-o", "back.onnx")
    assert code == 0 and os.path.exists(tmp_path / "back.onnx"), out + err
    # the closing line accounts for the wall time: its parts add up to the total
    line = next(x for x in out.splitlines() if "total " in x and "wrote back.onnx" in x)
    parts = dict((k.strip(), float(v)) for k, v in re.findall(r"([a-zA-Z0-9 ]+) (\d+\.\d+) s",
                                                            line.split("total ")[1]))
    total = float(line.split("total ")[1].split(" s:")[0])
    assert {"backend import", "build", "export", "verification", "other"} <= set(parts), line
    # each printed value is rounded to 0.01 s: the parts add up within half that per value
    assert parts["backend import"] > 0.5, line
    assert abs(sum(parts.values()) - total) <= 0.005 * (len(parts) + 1) + 1e-9, line
    code, out, err = cli(tmp_path, "verify", "back.onnx", "tiny.keras")
    assert code == 0, out + err
    code, _, err = cli(tmp_path, "export", "nope.yaml", "-o", "n.onnx")
    assert code == 2 and "nope.yaml" in err, err
    assert sorted(os.listdir(tmp_path)) == ["back.onnx", "nchw.keras", "tiny.keras",
                                           "tiny.onnx"]


def test_import_of_a_dynamic_size_net_at_sizes_it_cant_run(tmp_path):
    """A runtime error during verification is a failed verification (exit 1, the runtime,
    the input shape and the node named), not an internal error (exit 3)."""
    import onnx
    from test_import_wild import _pyramid

    onnx.save(_pyramid(), tmp_path / "fpn.onnx")
    code, out, err = cli(tmp_path, "import", "fpn.onnx", "--sizes", "16x24")
    assert code == 1 and "onnxruntime" in err and "[2, 3, 16, 24]" in err, out + err
    code, _, err = cli(tmp_path, "import", "fpn.onnx", "--sizes", "16xq")
    assert code == 2 and "--sizes: '16xq'" in err
    code, out, err = cli(tmp_path, "import", "fpn.onnx")
    assert code == 0 and "compared at 16x32, 32x48" in out, out + err
    assert sorted(os.listdir(tmp_path)) == ["fpn.failed.json", "fpn.failed.keras", "fpn.keras",
                                           "fpn.onnx"]


def test_demo_and_bench_argument_errors(tmp_path):
    code, _, err = cli(tmp_path, "demo", "--unknown")
    assert code == 2 and "--unknown" in err
    code, _, err = cli(tmp_path, "bench", "--out")
    assert code == 2 and "--out" in err


def test_demo_exports_resnet50_and_clocks_the_backend_import(tmp_path):
    # demo once ran export through a second main(), which re-imported the (loaded) backend
    # and reported "backend import 0.00 s"
    code, out, err = cli(tmp_path, "demo")
    assert code == 0, out + err
    assert os.listdir(tmp_path / "export") == ["resnet50.onnx"]
    line = re.search(r"total ([\d.]+) s: backend import ([\d.]+) s, build ([\d.]+) s", out)
    assert line, out
    total, backend, build = map(float, line.groups())
    assert 0.1 < backend < total and build > 0, line.group(0)
