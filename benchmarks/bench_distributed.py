"""Issue 9's measurements: data-parallel lp.sgd on one machine, and the on-paper scaling.

1. 784-256-128-10, batch 1024, float32, SGD: seconds per step of 2 processes x 1 thread
   (lp.sgd(distributed=True), gloo on loopback) against 1 process x 2 threads (and 1 x 1), and the
   part of the 2-process step spent in the all-reduce.
2. The all-reduce time per step against |E| (2 processes, float32 buffers of |E| + 2 numbers).
3. On paper, for P machines on a 10 Gb/s network: compute per step ~ c b |E| / P (c from the
   1-thread step above), a ring all-reduce moves 2(P-1)/P |E| floats per process; the per-process
   batch at which communication stays under 10% of a step, and the scaling to 8 and 64 machines.

    python benchmarks/bench_distributed.py            # about a minute on 2 cores
    python benchmarks/bench_distributed.py --quick    # the script's logic in seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

SIZES = [784, 256, 128, 10]
BATCH = 1024
NET_GBPS = 10.0  # the network of the on-paper analysis
LATENCY_S = 50e-6  # per message of a ring step on that network (an assumption, stated in the docs)


def problem(n=8192):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, SIZES[0])).astype(np.float32)
    Y = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], n)]
    return X, Y


def network():
    import layerprop as lp
    return lp.Network(lp.LayeredGraph.dense(SIZES), activation="sigmoid", loss="softmax_cross_entropy",
                      seed=0, dtype="float32")


def seconds_per_step(iterations, distributed=False):
    """Median seconds per lp.sgd step in the steady state, with distributed=True also the median
    seconds per step spent in the all-reduce (Group.reduce). A run's fixed costs (the start-up
    check, the broadcast of the weights, the last evaluation: ~20 ms for 2 processes, which a
    30-step run would spread as ~0.7 ms over every step) are left out by timing runs of 1 and of
    1 + iterations steps: per step = (T(1 + iterations) - T(1)) / iterations, after a warm-up run
    (numba's kernels compiled, the process group up)."""
    import layerprop as lp
    from layerprop import distributed as d

    X, Y = problem()
    spent = []
    if distributed:
        original = d.Group.reduce

        def timed(self, *args):
            t = time.perf_counter()
            out = original(self, *args)
            spent.append(time.perf_counter() - t)
            return out
        d.Group.reduce = timed
    kw = dict(batch_size=BATCH, step_size=0.01, seed=0, progress=False, distributed=distributed)
    lp.sgd(network(), X, Y, iterations=3, eval_every=3, **kw)

    def timed_run(n):
        spent.clear()
        t = time.perf_counter()
        lp.sgd(network(), X, Y, iterations=n, eval_every=n, **kw)
        return time.perf_counter() - t, sum(spent)
    runs = []
    for _ in range(5):
        short, long = timed_run(1), timed_run(1 + iterations)
        runs.append(((long[0] - short[0]) / iterations, (long[1] - short[1]) / iterations))
    step = statistics.median(r[0] for r in runs)
    comm = statistics.median(r[1] for r in runs)
    return step, comm


def allreduce_times(sizes, repeats):
    """Median seconds of one all-reduce of n float32 numbers, for each n (run on every rank)."""
    import torch
    from layerprop.distributed import Group, join  # noqa: F401 (join sets up nothing here)
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    g = Group(dist.get_rank(), dist.get_world_size())
    out = {}
    for n in sizes:
        buf = torch.zeros(n, dtype=torch.float32)
        for _ in range(3):
            g._collective("bench", dist.all_reduce, buf)
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            g._collective("bench", dist.all_reduce, buf)
            ts.append(time.perf_counter() - t)
        out[n] = statistics.median(ts)
    return out


def _worker_bench(iterations, sizes, repeats):
    step, comm = seconds_per_step(iterations, distributed=True)
    return {"step": step, "allreduce_in_step": comm, "allreduce": allreduce_times(sizes, repeats)}


def single(iterations, threads):
    from threadpoolctl import threadpool_limits
    with threadpool_limits(threads):
        return seconds_per_step(iterations)[0]


def on_paper(t1_step, edges, P_list=(2, 8, 64), gbps=NET_GBPS, latency=LATENCY_S, b=BATCH):
    """Ring all-reduce and compute times per step for P machines (float32)."""
    c = t1_step / (b * edges)  # seconds per row per edge, one thread (forward + backward + update)
    bw = gbps * 1e9 / 8  # bytes per second
    rows = []
    for P in P_list:
        comm = 2 * (P - 1) / P * edges * 4 / bw + 2 * (P - 1) * latency
        comp = c * edges * b / P
        # per-process batch at which comm <= 10% of (comp + comm): comp >= 9 comm
        b_min = 9 * comm / (c * edges)
        rows.append({"P": P, "ring_MB_per_process": 2 * (P - 1) / P * edges * 4 / 1e6, "comm_ms": comm * 1e3,
                     "compute_ms_global_batch_1024": comp * 1e3, "comm_share_b1024": comm / (comm + comp),
                     "speedup_b1024": t1_step / (comp + comm), "efficiency_b1024": t1_step / (comp + comm) / P,
                     "per_process_batch_for_10pct": int(np.ceil(b_min)),
                     "global_batch_for_10pct": int(np.ceil(b_min)) * P})
    return {"c_seconds_per_row_edge": c, "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny counts: checks the script, not the machine")
    ap.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    a = ap.parse_args()
    iterations, repeats = (3, 3) if a.quick else (30, 20)
    sizes = [10**3, 10**4, 10**5, 234_752, 10**6] + ([] if a.quick else [4 * 10**6])
    from layerprop.distributed import launch

    edges = sum(SIZES[t] * SIZES[t + 1] for t in range(len(SIZES) - 1))
    t11 = single(iterations, 1)
    t12 = single(iterations, 2)
    dist = launch(2, _worker_bench, (iterations, sizes, repeats), threads=1)[0]
    fig = {"network": "-".join(map(str, SIZES)), "edges": edges, "batch": BATCH, "dtype": "float32",
           "step_1proc_1thread_s": t11, "step_1proc_2threads_s": t12, "step_2procs_1thread_s": dist["step"],
           "allreduce_in_2proc_step_s": dist["allreduce_in_step"],
           "speed_2procs_vs_2threads": t12 / dist["step"], "speed_2procs_vs_1thread": t11 / dist["step"],
           "allreduce_s_by_floats": dist["allreduce"], "paper": on_paper(t11, edges)}
    print(f"784-256-128-10, |E| = {edges}, batch {BATCH}, float32, book SGD")
    print(f"  1 process  x 1 thread : {t11 * 1e3:8.2f} ms/step")
    print(f"  1 process  x 2 threads: {t12 * 1e3:8.2f} ms/step")
    print(f"  2 processes x 1 thread: {dist['step'] * 1e3:8.2f} ms/step  (all-reduce {dist['allreduce_in_step'] * 1e3:.2f} ms)"
          f"  -> {fig['speed_2procs_vs_2threads']:.2f}x the 2-thread speed")
    print("all-reduce (2 processes, gloo, loopback), float32:")
    for n, t in dist["allreduce"].items():
        print(f"  {n:>9} floats: {t * 1e3:8.3f} ms  ({n * 4 / t / 1e9:.2f} GB/s)")
    p = fig["paper"]
    print(f"on paper ({NET_GBPS:g} Gb/s ring, {LATENCY_S * 1e6:g} us per message; c = {p['c_seconds_per_row_edge']:.3g} s per row-edge):")
    for r in p["rows"]:
        print(f"  P={r['P']:>3}: comm {r['comm_ms']:.2f} ms, compute (b=1024) {r['compute_ms_global_batch_1024']:.2f} ms, "
              f"comm share {100 * r['comm_share_b1024']:.0f}%, speed-up {r['speedup_b1024']:.1f}x; "
              f"10% needs >= {r['per_process_batch_for_10pct']} rows/process (global {r['global_batch_for_10pct']})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(fig, f, indent=2, default=str)


if __name__ == "__main__":
    main()
