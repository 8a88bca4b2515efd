"""The benchmark harness runs end to end on tiny shapes (no timing is asserted)."""

import os
import subprocess
import sys

import pytest

from helpers import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the harness spawns its own backends; run once")
def test_benchmark_harness_smoke(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick",
         "--out", str(tmp_path), "--backends", "tensorflow"],
        capture_output=True, text=True, timeout=900, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## 1. Layers", "## 2. Export", "## 3. onnxruntime", "## 4. Build"):
        assert heading in text
    assert "Conv2DTranspose" in text and "resnet50" in text
    assert (tmp_path / "results.png").stat().st_size > 1000
    section3 = text.split("## 3.")[1].split("## 4.")[0]
    rows = [line for line in section3.splitlines() if line.startswith("| ") and "peak" not in line]
    assert rows and not any("%" in row for row in rows)  # a smoke run prints no % of peak
    assert not (tmp_path / "runs").exists()  # --out is where everything went


@pytest.mark.skipif(BACKEND != "torch", reason="one backend is enough for a smoke run")
def test_gpu_check_smoke(tmp_path):
    """benchmarks/gpu_check.py: without a GPU it says so and exits 0; --cpu-smoke runs its
    whole measurement on the CPU provider (the correct graph passes, every fault is caught)."""
    import json

    import onnxruntime as ort

    script = os.path.join(ROOT, "benchmarks", "gpu_check.py")
    env = dict(os.environ, PYTHONPATH=ROOT)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        plain = subprocess.run([sys.executable, script], capture_output=True, text=True,
                               timeout=300, env=env)
        assert plain.returncode == 0 and "no GPU here" in plain.stdout
    out = tmp_path / "gpu.json"
    smoke = subprocess.run([sys.executable, script, "--cpu-smoke", "--json", str(out)],
                           capture_output=True, text=True, timeout=600, env=env)
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["smoke"] and result["faults"]["baseline_passed"]
    faults = {k: v for k, v in result["faults"].items() if k != "baseline_passed"}
    assert len(faults) >= 8 and all(faults.values())
    row = result["models"][0]
    assert row["fp32_tf32_off"] < 1e-4 and row["fp16"] < 1e-2
    assert "## 15. GPU check" in smoke.stdout
