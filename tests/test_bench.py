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
