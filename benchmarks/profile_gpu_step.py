"""The kernels of one layerprop training step on a CUDA device (issue 7's small-batch case).

    python benchmarks/profile_gpu_step.py                 # 784-256-128-10, batch 64, book's SGD
    python benchmarks/profile_gpu_step.py --sizes 784,2048,2048,10 --batch 4096

Runs the CudaGraphTrainer's step eagerly under torch.profiler (kernels inside a CUDA graph are not
listed one by one) and prints each kernel's count per step and mean device time, then the time per
step of the same steps replayed from a CUDA graph. At small batches a step's time is mostly the
number of kernels times their launch-to-launch latency, so the count is the figure to watch.
Without CUDA it prints "skipped: no CUDA device" and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="784,256,128,10")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--steps", type=int, default=20, help="steps profiled (and steps per graph)")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("skipped: no PyTorch")
        return 0
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return 0
    import layerprop as lp
    from bench_gpu import matmul_rate, train_flops  # beside this script
    from layerprop.device import set_tf32, to_device
    from layerprop.engines.cuda_graph import CudaGraphTrainer

    set_tf32(False)
    sizes = [int(s) for s in args.sizes.split(",")]
    b, m = args.batch, args.steps
    net = lp.Network(lp.LayeredGraph.dense(sizes), loss="softmax_cross_entropy", dtype="float32", seed=0)
    g = torch.Generator(device="cuda").manual_seed(0)
    X = torch.randn(8 * b, sizes[0], device="cuda", generator=g)
    Y = torch.nn.functional.one_hot(torch.randint(0, sizes[-1], (8 * b,), device="cuda", generator=g),
                                    sizes[-1]).float()
    rows = torch.randint(0, 8 * b, (m, b), device="cuda", generator=g)
    eager = CudaGraphTrainer(to_device(net, "cuda"), X, Y, b, args.optimizer, steps_per_graph=m, capture=False)
    eager.run(rows, [0.05] * m)
    torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        eager.run(rows, [0.05] * m)
        torch.cuda.synchronize()
    try:
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        by_name = {}
        for e in kernels:
            n, us = by_name.get(e.name, (0, 0.0))
            by_name[e.name] = (n + 1, us + e.device_time)
        print(f"{'-'.join(map(str, sizes))}, batch {b}, {args.optimizer}: {len(kernels) / m:.1f} kernels per step "
              f"(eager, {m} steps profiled), {sum(us for _, us in by_name.values()) / m:.1f} us of device time "
              f"per step")
        print(f"{'per step':>8} {'mean us':>8}  kernel")
        for name, (n, us) in sorted(by_name.items(), key=lambda kv: -kv[1][1]):
            print(f"{n / m:>8.1f} {us / n:>8.2f}  {name[:110]}")
        # the matrix products alone (cuBLAS's kernels, split-K reductions included) against the rate
        # of one 8192^3 product: the most any step built on these products can reach
        gemm_us = sum(us for name, (_, us) in by_name.items()
                      if "gemm" in name.lower() or "splitkreduce" in name.lower()) / m
        rate = matmul_rate(torch, 8192, 10)
        print(f"matrix products: {gemm_us:.1f} us per step = {train_flops(sizes) * b / gemm_us / 1e6:.2f} TFLOP/s "
              f"= {train_flops(sizes) * b / (gemm_us * 1e-6) / rate:.0%} of the float32 8192^3 rate "
              f"({rate / 1e12:.2f} TFLOP/s, TF32 off)")
    except Exception as e:  # noqa: BLE001 -- the profiler's event API differs between versions
        print(f"per-kernel summary failed ({type(e).__name__}: {e}); torch's table:")
        print(prof.key_averages().table(sort_by="device_time_total", row_limit=30))
    graph = CudaGraphTrainer(to_device(net, "cuda"), X, Y, b, args.optimizer, steps_per_graph=m)
    graph.run(rows, [0.05] * m)
    torch.cuda.synchronize()
    t0, reps = time.perf_counter(), 50
    for _ in range(reps):
        graph.run(rows, [0.05] * m)
    torch.cuda.synchronize()
    print(f"graph replay: {(time.perf_counter() - t0) / (reps * m) * 1e6:.1f} us per step "
          f"({m} steps per replay, {reps} replays, with the host's per-call work)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
