"""The GPU benchmark scripts' logic on the CPU (their figures need a GPU: BENCHMARKS.md)."""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: run the real benchmark")
def test_bench_gpu_smoke_on_cpu_times_every_peer_and_checks_equality(tmp_path):
    out = _run(BENCH / "bench_gpu.py", "--smoke-cpu", "--quick", "--json", tmp_path / "b.json")
    assert out.returncode == 0, out.stderr
    for peer in ("layerprop (CUDA graph)", "layerprop (eager)", "PyTorch eager"):
        assert peer in out.stdout
    assert "failed" not in out.stdout
    err = float(out.stdout.split("max rel. error ")[1].split()[0])
    assert err < 1e-5  # float32 steps against the float64 reference
    assert (tmp_path / "b.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_scripts_say_skipped_without_cuda():
    for script in ("bench_gpu.py", "profile_gpu_step.py"):
        out = _run(BENCH / script)
        assert out.returncode == 0 and out.stdout.strip() == "skipped: no CUDA device", (script, out)
