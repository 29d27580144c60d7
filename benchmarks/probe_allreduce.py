"""Where the all-reduce time of a 2-process step goes (issue 9's diagnosis, docs/distributed.md).

Runs bench_distributed's problem (784-256-128-10, batch 1024, float32, book SGD) as
lp.sgd(distributed=True) in 2 local workers (distributed.launch, 1 thread each, compute threads
pinned) and logs, per step and rank, when the computation ended (entry into Group.reduce) and when
the all-reduce returned. From the two ranks' logs it prints, per step: each rank's compute time,
the skew between the ranks' entries, and the transfer time after the later rank entered.

    python benchmarks/probe_allreduce.py                 # 400 steps
    python benchmarks/probe_allreduce.py --nice 0        # the computing threads at their niceness
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_distributed as bd  # noqa: E402


def worker(iterations):
    import layerprop as lp
    from layerprop import distributed as d

    X, Y = bd.problem()
    log = []
    reduce = d.Group.reduce

    def timed(self, *args):
        t = time.perf_counter()  # CLOCK_MONOTONIC: comparable across the two processes
        out = reduce(self, *args)
        log.append((t, time.perf_counter()))
        return out
    d.Group.reduce = timed
    kw = dict(batch_size=bd.BATCH, step_size=0.01, seed=0, progress=False, distributed=True)
    lp.sgd(bd.network(), X, Y, iterations=3, eval_every=3, **kw)  # warm-up: kernels, process group
    log.clear()
    lp.sgd(bd.network(), X, Y, iterations=iterations, eval_every=iterations, **kw)
    return log


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--nice", type=int, default=None,
                    help="launch(nice=...): raise each computing thread's niceness by this [default: launch's]")
    a = ap.parse_args()
    from layerprop.distributed import launch

    kw = {} if a.nice is None else {"nice": a.nice}
    r0, r1 = launch(2, worker, (a.iterations,), threads=1, **kw)
    comp, skew, xfer, step = [], [], [], []
    for i in range(1, len(r0)):
        e0, e1 = r0[i][0], r1[i][0]
        comp += [e0 - r0[i - 1][1], e1 - r1[i - 1][1]]
        skew.append(abs(e0 - e1))
        xfer.append(max(r0[i][1], r1[i][1]) - max(e0, e1))
        step.append(r0[i][1] - r0[i - 1][1])
    ms = lambda v: 1e3 * np.asarray(v)  # noqa: E731
    for name, v in (("compute per rank", comp), ("|entry skew|", skew), ("transfer after both entered", xfer),
                    ("step (rank 0)", step)):
        v = ms(v)
        print(f"{name:>28}: median {statistics.median(v):6.2f} ms, mean {v.mean():6.2f}, max {v.max():6.2f}")
    print(f"steps whose transfer took > 2 ms: {100 * np.mean(ms(xfer) > 2):.0f}%  (launch nice: {kw or 'default'})")


if __name__ == "__main__":
    main()
