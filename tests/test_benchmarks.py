import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_runner_writes_json_and_markdown(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks", "core", "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "core.json").read_text())
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["torch"]
    ssim_row = data["tables"][0]["rows"][0]
    assert ssim_row["course (s)"] > 0 and ssim_row["skimage (s)"] > 0
    md = (tmp_path / "core.md").read_text()
    assert md.startswith("# Benchmark: core") and "| metric |" in md
