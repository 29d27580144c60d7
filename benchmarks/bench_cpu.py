"""CPU benchmark: layerprop against PyTorch eager, scikit-learn and plain NumPy, in ONE run.

    python benchmarks/bench_cpu.py --quick          # a minute or two
    python benchmarks/bench_cpu.py                  # the full run (adds the 1e6 x 784 memmap)

Every peer trains on the same fixed-seed synthetic data with the same thread count
(threadpoolctl for the BLAS/OpenMP pools, torch.set_num_threads). Peers run interleaved in each
repeat and the medians are reported, so that a ratio compares numbers taken side by side.
Flops per example and weight: 2 forward, 2 weight gradient, 2 input gradient (none at the
first layer); biases are not counted. A peer that is not installed is reported as skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import layerprop as lp
from layerprop.engines import NumbaEngine, NumpyEngine, numba_single, select_engine
from layerprop.engines.numpy_fast import book_update_

try:
    import torch
except ImportError:  # a peer that is not installed is skipped, never faked
    torch = None
try:
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
except ImportError:
    sklearn = None

SIZES = [784, 256, 128, 10]
SIZES_1 = [784, 100, 10]
ETA, LAM = 0.05, 1e-4


def train_flops(sizes):
    """Flops per example of one training step (2 fwd + 2 weight grad + 2 input grad, not at t=0)."""
    w = [sizes[t] * sizes[t + 1] for t in range(len(sizes) - 1)]
    return sum(4 * x for x in w) + sum(2 * x for x in w[1:])


def predict_flops(sizes):
    return sum(2 * sizes[t] * sizes[t + 1] for t in range(len(sizes) - 1))


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_times(runs, repeats, pause):
    """{name: [seconds of each repeat]}: every run once per round, ``repeats`` rounds, each run
    after ``pause`` seconds of sleep (the last peer's idle pool threads stop spinning first)."""
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, f in runs.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def matmul_rate(n, repeats):
    """The machine's float32 matrix-product rate (GFLOP/s) in this run: C = A @ B, n x n."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    C = np.empty_like(A)
    np.matmul(A, B, out=C)
    return 2 * n ** 3 / median_time(lambda: np.matmul(A, B, out=C), repeats) / 1e9


def matmul_run(n, reps=None):
    """A callable that does ``reps`` float32 n x n matrix products (to time beside the peers)."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    C = np.empty_like(A)
    reps = reps or matmul_run.reps
    def run():
        for _ in range(reps):
            np.matmul(A, B, out=C)
    return run


def products_run(sizes, batch, n):
    """A callable doing the matrix products of one epoch's steps alone (NumPy, its BLAS threads),
    with the steps' shapes: o_{t+1} = o_t W_t^T, the weight gradients g_{t+1}^T o_t, and the input
    gradients g_{t+1} W_t except at the first layer (random operands, no element-wise work): the
    most a step built on these products can reach."""
    rng = np.random.default_rng(0)
    W = [rng.standard_normal((sizes[t + 1], sizes[t]), dtype=np.float32) for t in range(len(sizes) - 1)]
    o = [rng.random((batch, k), dtype=np.float32) for k in sizes]
    g = [rng.random((batch, k), dtype=np.float32) for k in sizes]
    gW = [np.empty_like(w) for w in W]
    def run():
        for _ in range(n // batch):
            for t in range(len(W)):
                np.matmul(o[t], W[t].T, out=o[t + 1])
            for t in range(len(W) - 1, -1, -1):
                np.matmul(g[t + 1].T, o[t], out=gW[t])
                if t > 0:
                    np.matmul(g[t + 1], W[t], out=g[t])
    return run


def synthetic(n, k_in, k_out, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, k_in), dtype=np.float32)
    labels = rng.integers(0, k_out, n)
    return X, np.eye(k_out, dtype=np.float32)[labels], labels


# -- the contenders ---------------------------------------------------------------------------
def layerprop_epoch(net, X, Y, batch, perm):
    """One epoch of minibatch SGD as the training loop ``lp.sgd`` runs it: the compiled loop of the
    book's update (``run_minibatch_sgd``) where the engine has one for this network and batch,
    else the NumPy engine's gradient sums and the book's in-place update per minibatch."""
    eng = select_engine(net, batch_size=batch, optimizer="sgd")
    if hasattr(eng, "run_minibatch_sgd") and eng.minibatch_ok(net, batch) and len(perm) % batch == 0:
        rows = perm.reshape(-1, batch)
        return lambda: eng.run_minibatch_sgd(net, X, Y, rows, ETA, LAM)
    return numpy_engine_epoch(net, X, Y, batch, perm)


def numpy_engine_epoch(net, X, Y, batch, perm):
    """One epoch with the NumPy engine: gradient sums and the book's in-place update per minibatch."""
    eng = NumpyEngine()
    tmp = [np.empty_like(w) for w in net.W + net.b]
    def run():
        for i in range(0, len(perm), batch):
            rows = perm[i:i + batch]
            _, total, gW, gb = eng.gradient_sums(net, X[rows], Y[rows], None)
            for t in range(net.T):
                book_update_(net.W[t], gW[t], ETA, LAM, total=total, tmp=tmp[t])
                book_update_(net.b[t], gb[t], ETA, LAM, total=total, tmp=tmp[net.T + t])
    return run


def layerprop_sgd(net, X, Y, batch):
    """One epoch through the public training loop ``lp.sgd`` (argument checks and data hash included)."""
    def run():
        lp.sgd(net, X, Y, epochs=1, batch_size=batch, step_size=ETA, l2=LAM, seed=0, progress=False)
    return run


def torch_params(net):
    return ([torch.tensor(w, requires_grad=True) for w in net.W],
            [torch.tensor(v, requires_grad=True) for v in net.b])


def torch_epoch(net, X, Y, labels, batch, perm, loss):
    W, b = torch_params(net)
    opt = torch.optim.SGD(W + b, lr=ETA, weight_decay=LAM)
    Xt, Yt, Lt, P = torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(labels), torch.from_numpy(perm)
    def run():
        for i in range(0, len(perm), batch):
            rows = P[i:i + batch]
            h = Xt[rows]
            for t in range(len(W) - 1):
                h = torch.sigmoid(h @ W[t].T + b[t])
            z = h @ W[-1].T + b[-1]
            if loss == "softmax_cross_entropy":
                l = torch.nn.functional.cross_entropy(z, Lt[rows])
            else:
                l = 0.5 * ((torch.sigmoid(z) - Yt[rows]) ** 2).sum() / len(rows)
            opt.zero_grad(set_to_none=False)
            l.backward()
            opt.step()
    return run


def sklearn_epoch(X, Y, labels, batch, loss):
    kw = dict(hidden_layer_sizes=tuple(SIZES[1:-1]), activation="logistic", solver="sgd", batch_size=batch,
              learning_rate_init=ETA, momentum=0.0, alpha=LAM, shuffle=True, random_state=0)
    if loss == "softmax_cross_entropy":
        est, target = MLPClassifier(**kw), labels
        est.partial_fit(X[:batch], target[:batch], classes=np.arange(SIZES[-1]))
    else:
        est, target = MLPRegressor(**kw), Y
        est.partial_fit(X[:batch], target[:batch])
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.partial_fit(X, target)
    return run, est


# -- sections ---------------------------------------------------------------------------------
def minibatch_section(args, gemm, out):
    n = args.n
    X, Y, labels = synthetic(n, SIZES[0], SIZES[-1])
    perm = np.random.default_rng(1).permutation(n)
    flops = train_flops(SIZES)
    print(f"\n## Minibatch training, one epoch of {n} examples, {'-'.join(map(str, SIZES))}, sigmoid hidden, float32")
    print("layerprop = one epoch as the training loop runs it: the compiled minibatch loop (numba, float32) where"
          " it applies, else the NumPy engine's gradient sums + the book's in-place update per minibatch;"
          " numpy eng. = the latter; lp.sgd = the public training loop, one call per epoch")
    print(f"{'loss':<22}{'batch':>6}  {'peer':<20}{'examples/s':>12}{'(best)':>10}{'GFLOP/s':>9}{'% matmul':>9}  ratios (layerprop / peer)")
    for loss in ("softmax_cross_entropy", "squared"):
        for batch in args.batches:
            net = lp.Network(lp.LayeredGraph.dense(SIZES), activation="sigmoid", loss=loss, seed=0,
                             dtype="float32", init="glorot")
            runs = {"layerprop": layerprop_epoch(net.copy(), X, Y, batch, perm)}
            if runs["layerprop"].__name__ == "<lambda>":  # the compiled loop: show the NumPy engine beside it
                runs["layerprop numpy eng."] = numpy_engine_epoch(net.copy(), X, Y, batch, perm)
            if hasattr(lp, "sgd"):
                runs["layerprop lp.sgd"] = layerprop_sgd(net, X, Y, batch)
            if torch is not None:
                runs["pytorch-eager"] = torch_epoch(net, X, Y, labels, batch, perm, loss)
            sk_dtype = None
            if sklearn is not None:
                runs["sklearn"], est = sklearn_epoch(X, Y, labels, batch, loss)
                sk_dtype = est.coefs_[0].dtype
            runs["_matmul"] = matmul_run(args.gemm_n)
            runs["_products"] = products_run(SIZES, batch, n)
            times = interleaved_times(runs, args.repeats, args.pause)
            t_mm = statistics.median(times.pop("_matmul"))
            t_products = statistics.median(times.pop("_products"))
            del runs["_products"]
            gemm = 2 * args.gemm_n ** 3 * args.gemm_reps / t_mm / 1e9  # measured beside the peers
            del runs["_matmul"]
            med = {k: statistics.median(v) for k, v in times.items()}
            for k in ("layerprop lp.sgd", "pytorch-eager", "sklearn"):
                if k not in med:
                    print(f"{loss:<22}{batch:>6}  {k:<20}{'skipped (not installed)':>30}")
            for k, t in med.items():
                eps = n / t
                gf = eps * flops / 1e9
                ratio = "  ".join(f"{med[p] / med['layerprop']:.2f}x {p}" for p in med if p != "layerprop") \
                    if k == "layerprop" else ""
                name = k + (f" ({sk_dtype})" if k == "sklearn" else "")
                best = n / min(times[k])
                print(f"{loss:<22}{batch:>6}  {name:<20}{eps:>12.0f}{best:>10.0f}{gf:>9.1f}{100 * gf / gemm:>8.0f}%  {ratio}")
                out.append(("minibatch", loss, batch, k, eps, gf))
            print(f"{'':<28}float32 matmul rate measured between these runs: {gemm:.1f} GFLOP/s")
            products = n * flops / t_products / 1e9
            print(f"{'':<28}the steps' matrix products alone (NumPy, same shapes, no element-wise work): "
                  f"{products:.1f} GFLOP/s = {100 * products / gemm:.0f}% of it")
            out.append(("minibatch", loss, batch, "_products", n / t_products, products))


def book_section(args, out):
    n = args.n1
    X, Y, _ = synthetic(max(n, 1000), SIZES_1[0], SIZES_1[-1], seed=2)
    rows = np.random.default_rng(3).integers(0, X.shape[0], n)
    net = lp.Network(lp.LayeredGraph.dense(SIZES_1), activation="sigmoid", loss="squared", seed=0,
                     dtype="float32", init="book")
    print(f"\n## The book's SGD, batch size 1, {'-'.join(map(str, SIZES_1))}, sigmoid, squared loss, bias, float32")
    res = {}
    if numba_single.available():
        eng, a = NumbaEngine(), net.copy()
        t0 = time.perf_counter()
        eng.run_book_sgd(a, X, Y, rows[:10], np.full(10, ETA), LAM)
        print(f"numba first call (compile or load from cache): {time.perf_counter() - t0:.2f} s")
        etas = np.full(n, ETA)
        res["layerprop (numba)"] = median_time(lambda: eng.run_book_sgd(a, X, Y, rows, etas, LAM), args.repeats) / n
    else:
        print("layerprop (numba): skipped (numba not installed)")
    m = max(n // 20, 200)
    b = net.copy()
    res["layerprop (numpy loop)"] = median_time(
        lambda: NumpyEngine().run_book_sgd(b, X, Y, rows[:m], np.full(m, ETA), LAM), args.repeats) / m
    res["plain numpy loop"] = median_time(lambda: plain_numpy_loop(net.copy(), X, Y, rows[:m]), args.repeats) / m
    if torch is not None:
        res["pytorch-eager loop"] = median_time(lambda: torch_loop(net, X, Y, rows[:m]), args.repeats) / m
        res["pytorch-eager optim loop"] = median_time(lambda: torch_optim_loop(net, X, Y, rows[:m]),
                                                      args.repeats) / m
    else:
        print("pytorch-eager loop: skipped (not installed)")
    base = res.get("layerprop (numba)")
    for k, s in res.items():
        ratio = f"  layerprop(numba) is {s / base:.1f}x faster" if base and k != "layerprop (numba)" else ""
        print(f"{k:<26}{s * 1e6:>9.2f} us/example{1 / s:>12.0f} examples/s{ratio}")
        out.append(("book", k, s))


def plain_numpy_loop(net, X, Y, rows):
    """The book's loop written plainly with NumPy (new arrays each step), for comparison."""
    W, b = net.W, net.b
    for n in rows:
        x, y = X[n], Y[n]
        a1 = W[0] @ x + b[0]; o1 = 1 / (1 + np.exp(-a1))
        a2 = W[1] @ o1 + b[1]; o2 = 1 / (1 + np.exp(-a2))
        g2 = (o2 - y) * o2 * (1 - o2)
        g1 = (W[1].T @ g2) * o1 * (1 - o1)
        W[1] -= ETA * (np.outer(g2, o1) + LAM * W[1]); b[1] -= ETA * (g2 + LAM * b[1])
        W[0] -= ETA * (np.outer(g1, x) + LAM * W[0]); b[0] -= ETA * (g1 + LAM * b[0])


def torch_example_loss(W, b, x, y):
    """1/2 ||o_T - y||^2 of one example through the sigmoid network, on torch tensors."""
    o = x
    for t in range(len(W)):
        o = torch.sigmoid(W[t] @ o + b[t])
    return 0.5 * ((o - y) ** 2).sum()


def torch_loop(net, X, Y, rows):
    """A lean PyTorch eager loop: torch.autograd.grad and the update written in place."""
    W, b = torch_params(net)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    for n in rows.tolist():
        gs = torch.autograd.grad(torch_example_loss(W, b, Xt[n], Yt[n]), W + b)
        with torch.no_grad():
            for p, g in zip(W + b, gs):
                p -= ETA * (g + LAM * p)


def torch_optim_loop(net, X, Y, rows):
    """The same loop as PyTorch users write it, as in the minibatch group: backward() and
    torch.optim.SGD (weight decay lam) per example."""
    W, b = torch_params(net)
    opt = torch.optim.SGD(W + b, lr=ETA, weight_decay=LAM)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    for n in rows.tolist():
        opt.zero_grad(set_to_none=False)
        torch_example_loss(W, b, Xt[n], Yt[n]).backward()
        opt.step()


def rules_section(args, out):
    """lp.sgd with the book's update, momentum and adam: the engine it picks (the compiled
    minibatch loop, where numba is installed) against engine="numpy", interleaved."""
    n = args.n
    X, Y, _ = synthetic(n, SIZES[0], SIZES[-1])
    net = lp.Network(lp.LayeredGraph.dense(SIZES), activation="sigmoid", loss="softmax_cross_entropy", seed=0,
                     dtype="float32")
    print(f"\n## lp.sgd with the update rules, one epoch of {n} examples, {'-'.join(map(str, SIZES))}, "
          f"sigmoid, softmax CE, float32: engine auto against engine='numpy'")
    for opt, lr in (("sgd", ETA), ("momentum", 0.01), ("adam", 1e-3)):
        for batch in args.batches:
            runs = {eng: (lambda eng=eng: lp.sgd(net, X, Y, epochs=1, batch_size=batch, step_size=lr, optimizer=opt,
                                                 l2=LAM, seed=0, engine=eng, progress=False))
                    for eng in ("auto", "numpy")}
            times = interleaved_times(runs, args.repeats, args.pause)
            auto, numpy_ = (n / statistics.median(times[k]) for k in ("auto", "numpy"))
            print(f"{opt:<10}{batch:>6}  auto {auto:>10.0f} ex/s  numpy {numpy_:>10.0f} ex/s  {auto / numpy_:.2f}x")
            out.append(("rules", opt, batch, auto, numpy_))


def predict_section(args, gemm, out):
    n, batch = args.n_pred, 4096
    X, _, _ = synthetic(n, SIZES[0], SIZES[-1], seed=4)
    net = lp.Network(lp.LayeredGraph.dense(SIZES), activation="sigmoid", loss="softmax_cross_entropy",
                     seed=0, dtype="float32")
    eng = NumpyEngine()
    runs = {"layerprop": lambda: [eng.predict(net, X[i:i + batch]) for i in range(0, n, batch)],
            "layerprop (reference)": lambda: [net.predict(X[i:i + batch]) for i in range(0, n, batch)]}
    if torch is not None:
        W, b = torch_params(net)
        Xt = torch.from_numpy(X)
        def tp():
            with torch.no_grad():
                for i in range(0, n, batch):
                    h = Xt[i:i + batch]
                    for t in range(len(W) - 1):
                        h = torch.sigmoid(h @ W[t].T + b[t])
                    h @ W[-1].T + b[-1]
        runs["pytorch-eager"] = tp
    if sklearn is not None:
        _, est = sklearn_epoch(X[:4096], np.zeros((4096, 10), np.float32), np.arange(4096) % 10, 256,
                               "softmax_cross_entropy")
        runs["sklearn"] = lambda: [est.predict_proba(X[i:i + batch]) for i in range(0, n, batch)]
    for f in runs.values():
        f()
    print(f"\n## Prediction, batch {batch}, {n} examples, {'-'.join(map(str, SIZES))}")
    med = {k: median_time(f, args.repeats) for k, f in runs.items()}
    for k, t in med.items():
        eps, gf = n / t, n / t * predict_flops(SIZES) / 1e9
        ratio = "  ".join(f"{med[p] / med['layerprop']:.2f}x {p}" for p in med if p != "layerprop") \
            if k == "layerprop" else ""
        print(f"{k:<24}{eps:>12.0f} examples/s{gf:>8.1f} GFLOP/s{100 * gf / gemm:>6.0f}% matmul  {ratio}")
        out.append(("predict", k, eps))


CHILD = textwrap.dedent("""
    import sys, time, numpy as np
    from threadpoolctl import threadpool_limits
    import layerprop as lp
    from layerprop.engines import NumpyEngine
    from layerprop.engines.numpy_fast import book_update_
    from layerprop.memmap import open_npy
    threadpool_limits(int(sys.argv[3]))
    X = open_npy(sys.argv[1]); n = X.shape[0]
    labels = np.random.default_rng(0).integers(0, 10, n)
    net = lp.Network(lp.LayeredGraph.dense([784, 256, 128, 10]), loss="softmax_cross_entropy", seed=0, dtype="float32")
    eng, batch = NumpyEngine(), int(sys.argv[2])
    perm = np.random.default_rng(1).permutation(n)
    eye = np.eye(10, dtype=np.float32)
    def hwm():  # this process's peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited across exec)
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    before = hwm()
    rows = perm[:batch]  # the first step alone: loads the fused kernels (numba, LLVM) if installed
    eng.gradient_sums(net.copy(), X[rows], eye[labels[rows]], None)
    warm = hwm()
    t0 = time.perf_counter()
    if sys.argv[4] == "sgd":  # the public training loop on the memmap (Y, 1e6 x 10 float32, in memory)
        lp.sgd(net, X, eye[labels], epochs=1, batch_size=batch, step_size=0.05, l2=1e-4, seed=0, progress=False)
    else:
        for i in range(0, n, batch):
            rows = perm[i:i + batch]
            _, total, gW, gb = eng.gradient_sums(net, X[rows], eye[labels[rows]], None)
            for t in range(net.T):
                book_update_(net.W[t], gW[t], 0.05, 1e-4, total=total)
                book_update_(net.b[t], gb[t], 0.05, 1e-4, total=total)
    dt = time.perf_counter() - t0
    print(before, warm, hwm(), dt)
""")


def memmap_section(args, out):
    rows, batch = args.memmap_rows, 1024
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as d:
        path = os.path.join(d, "X.npy")
        t0 = time.perf_counter()
        M = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 784))
        rng = np.random.default_rng(0)
        for i in range(0, rows, 50_000):
            M[i:i + 50_000] = rng.random((min(50_000, rows - i), 784), dtype=np.float32)
        M.flush()
        del M
        size = os.path.getsize(path) / 2 ** 30
        print(f"\n## Training from a memory-mapped .npy: {rows} x 784 float32 ({size:.2f} GiB, written in "
              f"{time.perf_counter() - t0:.0f} s), one epoch, batch {batch}, random row order")
        for how in ("engine", "sgd"):
            res = subprocess.run([sys.executable, "-c", CHILD, path, str(batch), str(args.threads), how],
                                 capture_output=True, text=True, check=True)
            before, warm, peak, dt = res.stdout.split()
            before_mb, warm_mb, peak_mb = int(before) / 1024, int(warm) / 1024, int(peak) / 1024
            what = ("engine + book_update_ loop" if how == "engine" else
                    "lp.sgd(X=open_npy(...)) (checks X by runs of rows)")
            print(f"{what}: peak RSS {peak_mb:.0f} MiB (after imports and setup {before_mb:.0f} MiB, after the "
                  f"first step {warm_mb:.0f} MiB) for a {size * 1024:.0f} MiB file; epoch {float(dt):.1f} s = "
                  f"{rows / float(dt):.0f} examples/s")
            out.append(("memmap", how, rows, peak_mb, before_mb, float(dt)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller data and fewer repeats")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--memmap", choices=["auto", "yes", "no"], default="auto",
                   help="the 1e6 x 784 memmap RSS run (auto: only in the full run)")
    p.add_argument("--memmap-rows", type=int, default=1_000_000)
    p.add_argument("--tmpdir", default=None, help="where to write the memmap file (default: the system's)")
    p.add_argument("--sections", default="gemm,minibatch,book,rules,predict,memmap")
    p.add_argument("--pause", type=float, default=0.5,
                   help="seconds of sleep before each timed run, so that the thread pool of the peer "
                        "timed before (OpenBLAS, OpenMP) has stopped spinning (default 0.5)")
    args = p.parse_args(argv)
    args.n = 8192 if args.quick else 16_384
    args.n1 = 5000 if args.quick else 20_000
    args.n_pred = 16384 if args.quick else 65536
    args.repeats = 3 if args.quick else 5
    args.batches = [32, 128, 1024]
    args.gemm_n, args.gemm_reps = 1024, 8
    matmul_run.reps = args.gemm_reps
    sections = set(args.sections.split(","))
    do_memmap = args.memmap == "yes" or (args.memmap == "auto" and not args.quick)
    with threadpool_limits(args.threads):
        if torch is not None:
            torch.set_num_threads(args.threads)
        print("# layerprop CPU benchmark" + (" (--quick)" if args.quick else ""))
        print(f"CPU: {cpu_model()}; {os.cpu_count()} logical CPUs; threads used by every peer: {args.threads}")
        for info in threadpool_info():
            print(f"pool: {info.get('internal_api')} {info.get('version')} kernel={info.get('architecture')} "
                  f"threads={info.get('num_threads')} ({os.path.basename(info.get('filepath', ''))})")
        print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}")
        print(f"python {platform.python_version()}, numpy {np.__version__}, layerprop {lp.__version__}, "
              f"torch {getattr(torch, '__version__', 'not installed')}, sklearn {getattr(sklearn, '__version__', 'not installed')}, "
              f"numba {'installed' if numba_single.available() else 'not installed'}")
        print("element-wise passes of the NumPy engine (float32): "
              + ("fused numba kernels, one thread" if NumpyEngine().fused else "NumPy (numba not installed)"))
        out = []
        gemm = matmul_rate(1024 if args.quick else 2048, args.repeats)
        print(f"\nfloat32 matmul rate (numpy, {'1024' if args.quick else '2048'}^3): {gemm:.1f} GFLOP/s")
        if "minibatch" in sections:
            minibatch_section(args, gemm, out)
        if "book" in sections:
            book_section(args, out)
        if "rules" in sections:
            rules_section(args, out)
        if "predict" in sections:
            predict_section(args, gemm, out)
        gemm2 = matmul_rate(1024 if args.quick else 2048, args.repeats)
        print(f"\nfloat32 matmul rate again at the end: {gemm2:.1f} GFLOP/s (load from other processes shows here)")
        if do_memmap and "memmap" in sections:
            memmap_section(args, out)
    return out


if __name__ == "__main__":
    main()
