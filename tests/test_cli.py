"""The keras-convx command line: exit codes, one-line errors, outputs."""

import json
import os

import pytest

from keras_convx.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "wavenet.yaml")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_success_writes_file_and_report(tmp_path, capsys):
    out, report = tmp_path / "w.onnx", tmp_path / "r.json"
    code, stdout, err = run(capsys, "export", CONFIG, "--scale", "t", "-o", str(out),
                            "--report", str(report), "--method", "native")
    assert code == 0, stdout + err
    assert out.exists() and "pass" in stdout and f"wrote {out}" in stdout
    data = json.loads(report.read_text())
    assert data["passed"] and data["method"] == "native" and data["node_count"] > 0
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(report).st_mode & 0o777 == 0o666 & ~umask  # readable like any output
    # re-verify against the same weights: pass; against fresh random weights: exit 1
    import keras_convx as kc
    model = kc.build_model(CONFIG, scale="t")
    model.save(tmp_path / "m.keras")
    code, _, err = run(capsys, "export", str(tmp_path / "m.keras"), "-o", str(out))
    assert code == 0, err
    code, stdout, _ = run(capsys, "verify", str(out), str(tmp_path / "m.keras"))
    assert code == 0 and "pass" in stdout
    code, stdout, err = run(capsys, "verify", str(out), CONFIG, "--scale", "t",
                            "--plot", str(tmp_path / "errors.png"), "--report", str(report))
    assert code == 1 and "FAIL" in stdout and "--weights" in err
    # the plot: a PNG of every compared tensor; the report's rows carry Polygraphy's numbers
    assert (tmp_path / "errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotted" in stdout and "PSNR dB" in stdout
    rows = json.loads(report.read_text())["verify"]["tensors"]
    compared = [r for r in rows if r["status"] in ("pass", "FAIL")]
    assert compared and all(0 <= r["median_rel"] <= r["p99_rel"] <= r["rel"] * (1 + 1e-6)
                            for r in compared)
    assert all(r["psnr"] > 0 for r in compared if r["status"] == "pass")


def test_export_zoo_name_defaults_to_export_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(capsys, "export", "wavenet", "--scale", "t", "--no-verify")
    assert code == 0, err
    assert (tmp_path / "export" / "wavenet.onnx").exists()


@pytest.mark.parametrize("argv,message", [
    (["export", "missing.yaml"], r"missing.yaml: no such file"),
    (["export", "nozoo"], r"nozoo: no such config or zoo model \(zoo: crnn, mobilenet, resnet50"),
    # one resolver for every command: a typo gets the closest zoo name
    (["build", "resnt50"], r"resnt50: no such config or zoo model .*did you mean resnet50\?\)"),
    (["validate", "resnt50"], r"did you mean resnet50\?"),
    (["validate", "my.txt"], r"my.txt: not a config file \(accepted: .yaml, .yml, or a zoo"),
    (["export", "model.h5"], r"model.h5: not a config file \(accepted: .yaml, .yml, .keras"),
    (["export", ROOT + "/configs"], r"is a directory, not a model file"),
    (["validate", "missing.yaml"], r"missing.yaml: no such file"),
    (["export", CONFIG, "--set", "channels"], r"--set expects name=value, got 'channels'"),
    (["export", CONFIG, "--scale", "huge"], r"wavenet.yaml:\d+:\d+: scales: unknown scale 'huge'"),
    (["export", CONFIG, "--scale", "t", "--dynamic", "width"],
     r"--dynamic takes batch, spatial \(comma-separated\) or none, got 'width'"),
    (["export", CONFIG, "--scale", "t", "--input-shape", "64,64,3"],
     r"--input-shape '64,64,3' does not fit the model's inputs \d+,1 "),
], ids=["missing-file", "unknown-zoo", "build-typo", "validate-typo", "txt",
        "h5", "directory", "validate-missing", "bad-set", "bad-scale", "bad-dynamic",
        "bad-input-shape"])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-convx: error: ")
    import re
    assert re.search(message, lines[0]), lines[0]


def test_malformed_config_and_unknown_layer(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ninputs:\n  x: {shape: [8, 3]}\nlayers:\n  - {type: Conv1D, args: {filters: 2, kernel_size: 3, stride: 2}}\n")
    code, _, err = run(capsys, "export", str(bad))
    assert code == 2 and f"{bad}:5:55: layers[0] (conv1d_1).args.stride: unknown argument of Conv1D; did you mean strides?" in err
    bad.write_text("version: 1\ninputs:\n  x: {shape: [8, 3]}\nlayers:\n  - {type: Conv1DD, name: c}\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 2 and "unknown layer type 'Conv1DD'; did you mean Conv1D?" in err


def test_zoo_names_work_everywhere(capsys):
    import keras_convx as kc

    code, out, _ = run(capsys, "validate", "wavenet", "--scale", "t")
    assert code == 0 and out.startswith("wavenet: ok")
    assert kc.build_model("wavenet", scale="t").count_params() == \
        kc.build_model(CONFIG, scale="t").count_params()


def test_build_and_validate_print_tables(capsys):
    code, out, _ = run(capsys, "build", CONFIG, "--scale", "t")
    assert code == 0 and "layer_1_gate" in out and "params" in out
    code, out, _ = run(capsys, "validate", CONFIG, "--set", "length=512")
    assert code == 0 and "(None, 512, 256)" in out


def test_truncated_files_and_missing_output_folder(tmp_path, capsys):
    import keras_convx as kc

    model = kc.build_model(CONFIG, scale="t")
    model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "export", str(tmp_path / "cut.keras"), "-o", str(tmp_path / "o.onnx"))
    assert code == 2 and "not a loadable .keras file" in err
    assert not (tmp_path / "o.onnx").exists()
    code, _, err = run(capsys, "export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "no" / "o.onnx"))
    assert code == 2 and "output folder" in err and "does not exist" in err
    code, _, _ = run(capsys, "export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "o.onnx"))
    assert code == 0
    onnx_bytes = (tmp_path / "o.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 3])
    code, _, err = run(capsys, "verify", str(tmp_path / "cut.onnx"), str(tmp_path / "m.keras"))
    assert code == 2 and "not a valid ONNX file" in err
    other = kc.build_model(os.path.join(ROOT, "configs", "unet3d.yaml"), scale="t")
    other.save_weights(tmp_path / "other.weights.h5")
    code, _, err = run(capsys, "export", CONFIG, "--scale", "t", "--weights",
                       str(tmp_path / "other.weights.h5"), "-o", str(tmp_path / "x.onnx"))
    assert code == 2 and "can't load into wavenet" in err
    assert not (tmp_path / "x.onnx").exists()


def test_hostile_filesystem_conditions(tmp_path, capsys, monkeypatch):
    """Unreadable input, read-only output folder, full disk: exit 2, nothing left behind.

    The suite runs as root here, for whom permissions don't bite, so these conditions are
    simulated at the system-call boundary the CLI uses.
    """
    import builtins
    import errno

    config = tmp_path / "net.yaml"
    config.write_text(open(CONFIG).read())
    real_open = builtins.open

    def deny(path, *args, **kwargs):
        if str(path) == str(config):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    code, _, err = run(capsys, "export", str(config), "--scale", "t", "-o", str(tmp_path / "a.onnx"))
    assert code == 2 and "can't read" in err and "Permission denied" in err
    monkeypatch.setattr(builtins, "open", real_open)

    readonly = tmp_path / "ro"
    readonly.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(readonly)
                        else real_access(p, mode))
    code, _, err = run(capsys, "export", str(config), "--scale", "t", "-o", str(readonly / "a.onnx"))
    assert code == 2 and "is not writable" in err
    monkeypatch.setattr(os, "access", real_access)

    from keras_convx.exporter import publish as publish_module

    def disk_full(path, data):
        with real_open(path, "wb") as f:
            f.write(data[:100])  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(publish_module, "write_file", disk_full)
    out = tmp_path / "full" / "a.onnx"
    out.parent.mkdir()
    code, _, err = run(capsys, "export", str(config), "--scale", "t", "-o", str(out))
    assert code == 2 and "No space left on device" in err
    assert os.listdir(out.parent) == []  # no partial file, no temp file


def test_keras_files_load_in_safe_mode(tmp_path, capsys):
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    code, _, err = run(capsys, "export", str(tmp_path / "lambda.keras"), "-o", str(tmp_path / "l.onnx"))
    assert code == 2 and "not a loadable .keras file" in err and "safe_mode" in err
    assert not (tmp_path / "l.onnx").exists()


def _command(*argv):
    """Runs the installed `keras-convx` script in a fresh process: (code, stdout, stderr)."""
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "keras-convx")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([script, *argv], capture_output=True, text=True, env=env, timeout=600)
    return done.returncode, done.stdout, done.stderr


def test_help_imports_neither_keras_nor_numpy():
    """`--help` and argument errors come before any heavy import (the benchmark times it)."""
    import subprocess
    import sys

    probe = ("import sys; sys.argv = ['keras-convx']\n"
             "from keras_convx.cli import build_parser\n"
             "for argv in (['--help'], ['export', '--help'], ['verify', '--help']):\n"
             "    try:\n        build_parser().parse_args(argv)\n"
             "    except SystemExit:\n        pass\n"
             "heavy = sorted(m for m in ('keras', 'numpy', 'tensorflow', 'torch', 'jax', 'onnx')"
             " if m in sys.modules)\n"
             "print('HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


def test_commands_print_no_backend_log_lines():
    code, out, err = _command("validate", CONFIG, "--scale", "t")
    assert code == 0 and "ok" in out
    assert err == "", err  # no TensorFlow/absl/oneDNN lines without --debug


def test_schema_command_writes_a_valid_schema_the_zoo_passes(tmp_path, capsys):
    import jsonschema
    import yaml

    code, out, err = run(capsys, "schema", "-o", str(tmp_path / "s.json"))
    assert code == 0 and "wrote" in out, err
    schema = json.loads((tmp_path / "s.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    with open(CONFIG) as f:
        jsonschema.validate(yaml.safe_load(f), schema)
    code, out, _ = run(capsys, "schema")
    assert code == 0 and json.loads(out) == schema  # stdout by default


def test_bn_as_trained_sets_the_statistics_before_export(tmp_path, capsys):
    # the flag `demo` passes to `export` (demo is main(["export", ...]))
    code, stdout, err = run(capsys, "export", "mobilenet", "--scale", "t", "--bn-as-trained",
                            "-o", str(tmp_path / "m.onnx"), "--report", str(tmp_path / "r.json"))
    assert code == 0, stdout + err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and report["bn_folded"] > 0


def test_metadata_is_stored_and_inspect_prints_it_from_the_file_alone(tmp_path, capsys):
    import onnx

    out = tmp_path / "w.onnx"
    code, stdout, err = run(capsys, "export", CONFIG, "--scale", "t", "-o", str(out),
                            "--method", "native", "--meta", "classes=cat,dog",
                            "--meta", "owner=vision team")
    assert code == 0, stdout + err
    onnx.checker.check_model(str(out), full_check=True)  # the appended summary is valid
    code, stdout, err = run(capsys, "inspect", str(out))
    assert code == 0 and err == ""
    assert "metadata classes: cat,dog" in stdout and "metadata owner: vision team" in stdout
    assert "exported by keras_convx" in stdout and "float32" in stdout
    assert "verification: passed" in stdout and "CPUExecutionProvider" in stdout
    assert "Conv " in stdout and "input" in stdout
    from keras_convx.exporter.metadata import read

    verified = read(onnx.load(str(out)))["keras_convx.verification"]
    assert verified["passed"] and 0 < verified["worst_error"] < 2e-3
    # bad input: one line, exit 2, nothing written
    code, _, err = run(capsys, "export", CONFIG, "--scale", "t", "-o", str(tmp_path / "x.onnx"),
                       "--meta", "keras_convx.io=mine")
    assert code == 2 and "not allowed" in err and not (tmp_path / "x.onnx").exists()
    code, _, err = run(capsys, "export", CONFIG, "--scale", "t", "--meta", "novalue")
    assert code == 2 and "KEY=VALUE" in err
    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    code, _, err = run(capsys, "inspect", str(tmp_path / "junk.onnx"))
    assert code == 2 and "not an ONNX file" in err
