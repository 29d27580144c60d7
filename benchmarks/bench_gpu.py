"""GPU benchmark (issue 7): layerprop against PyTorch eager, PyTorch with a CUDA-graph step and
JAX jit (when installed), in ONE run on one CUDA device.

    python benchmarks/bench_gpu.py                  # about 2 minutes on one H100
    python benchmarks/bench_gpu.py --quick          # about 1 minute
    python benchmarks/bench_gpu.py --json out.json  # also write the figures as JSON

Without CUDA it prints "skipped: no CUDA device" and exits 0.

Every peer trains the same network (784-256-128-10 and 784-2048-2048-10, sigmoid hidden layers,
softmax cross-entropy, the same initial weights, plain SGD with eta = 0.05) on the same fixed-seed
synthetic data, resident on the device; minibatches of 64, 512 and 4096 rows are sliced on the
device from pre-drawn index tensors. float32 throughout, strict: TF32 is off for torch and JAX
uses "highest" matmul precision. The device's float32 matrix-product rate is measured in the same
run. Flops per example and weight: 2 forward, 2 weight gradient, 2 input gradient (none at the first
layer); biases are not counted (as benchmarks/bench_cpu.py). Figures are medians of 3 timed
repeats; each repeat runs whole blocks of steps and ends with a device synchronization.

layerprop runs as ``CudaGraphTrainer`` (several whole steps per CUDA-graph replay) and, for
reference, the same step function eagerly (``capture=False``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

# JAX takes 75% of the GPU's memory at its first use unless told not to; torch needs room beside it
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

SIZES = [(784, 256, 128, 10), (784, 2048, 2048, 10)]
BATCHES = [64, 512, 4096]
ETA = 0.05
N_ROWS = 65536
STEPS_PER_GRAPH = {64: 32, 512: 8, 4096: 2}  # minibatches per replay
DEV = "cuda"  # "cpu" only for --smoke-cpu (a check of this script's logic; no figures)


def train_flops(sizes):
    """Flops per example of one training step (2 fwd + 2 weight grad + 2 input grad, not at t=0)."""
    w = [sizes[t] * sizes[t + 1] for t in range(len(sizes) - 1)]
    return sum(4 * x for x in w) + sum(2 * x for x in w[1:])


def timed(block, examples_per_block, seconds, sync):
    """Median examples/s over 3 repeats of whole blocks (each repeat about seconds/3, synchronized)."""
    block()
    sync()
    rates = []
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while True:
            block()
            n += 1
            if time.perf_counter() - t0 >= seconds / 3:
                break
        sync()
        rates.append(n * examples_per_block / (time.perf_counter() - t0))
    return statistics.median(rates)


def matmul_rate(torch, n=8192, reps=10):
    """The device's float32 (strict, no TF32) matrix-product rate, flop/s."""
    a = torch.randn(n, n, device=DEV)
    b = torch.randn(n, n, device=DEV)
    c = torch.empty(n, n, device=DEV)
    for _ in range(3):
        torch.mm(a, b, out=c)
    if DEV == "cpu":
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        return 2 * n ** 3 / (time.perf_counter() - t0)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(3):
        start.record()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / reps)
    return 2 * n ** 3 / statistics.median(times)


def on_device(net):
    """The network as torch tensors on DEV (to_device; --smoke-cpu keeps torch CPU tensors)."""
    import torch

    from layerprop.device import to_device

    return to_device(net, "cuda") if DEV == "cuda" else net.to(torch)


# -- the peers --------------------------------------------------------------------------------
def layerprop_block(net, X, Y, rows, b, capture):
    from layerprop.engines.cuda_graph import CudaGraphTrainer

    tr = CudaGraphTrainer(on_device(net), X, Y, b, "sgd", steps_per_graph=STEPS_PER_GRAPH[b], capture=capture)
    etas = [ETA] * rows.shape[0]
    return lambda: tr.run(rows, etas)


def torch_model(torch, net):
    layers = []
    for t in range(net.T):
        lin = torch.nn.Linear(net.k[t], net.k[t + 1]).to(DEV)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(net.W[t]))
            lin.bias.copy_(torch.as_tensor(net.b[t]))
        layers += [lin, torch.nn.Sigmoid()] if t < net.T - 1 else [lin]
    return torch.nn.Sequential(*layers)


def torch_eager_block(torch, net, X, labels, rows):
    model = torch_model(torch, net)
    opt = torch.optim.SGD(model.parameters(), lr=ETA)
    loss_fn = torch.nn.CrossEntropyLoss()

    def block():
        for j in range(rows.shape[0]):
            idx = rows[j]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(X[idx]), labels[idx]).backward()
            opt.step()
    return block


def torch_graph_block(torch, net, X, labels, rows):
    """PyTorch's whole-network capture (its CUDA-graphs docs): one step per graph, rows gathered inside."""
    model = torch_model(torch, net)
    opt = torch.optim.SGD(model.parameters(), lr=ETA)
    loss_fn = torch.nn.CrossEntropyLoss()
    idx = rows[0].clone()

    def step():
        loss_fn(model(X[idx]), labels[idx]).backward()
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()

    def block():
        for j in range(rows.shape[0]):
            idx.copy_(rows[j])
            graph.replay()
    return block


def jax_block(net, X_np, labels_np, rows_np):
    """JAX jit of the same step (autodiff), with "highest" (strict float32) matmul precision."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_default_matmul_precision", "highest")
    gpu = jax.devices("gpu")[0]
    put = lambda a: jax.device_put(a, gpu)
    params = [(put(np.asarray(net.W[t])), put(np.asarray(net.b[t]))) for t in range(net.T)]
    X, labels, rows = put(X_np), put(labels_np), put(rows_np)

    def loss(p, x, y):
        for W, b in p[:-1]:
            x = jax.nn.sigmoid(x @ W.T + b)
        W, b = p[-1]
        logp = jax.nn.log_softmax(x @ W.T + b)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(p, idx):
        g = jax.grad(loss)(p, X[idx], labels[idx])
        return jax.tree_util.tree_map(lambda w, d: w - ETA * d, p, g)

    state = {"p": params}

    def block():
        p = state["p"]
        for j in range(rows.shape[0]):
            p = step(p, rows[j])
        state["p"] = p

    def sync():
        jax.block_until_ready(state["p"])
    return block, sync


# -- checks and the run ---------------------------------------------------------------------------
def equality_check(torch, steps=20, b=64, n=1024):
    """layerprop's graph-captured float32 steps on the GPU against the float64 CPU reference."""
    import layerprop as lp
    from layerprop.engines.cuda_graph import CudaGraphTrainer
    from layerprop.engines.reference import ReferenceEngine
    from layerprop.optim import get_optimizer
    from layerprop.sgd import combine

    rng = np.random.default_rng(1)
    net = lp.Network(lp.LayeredGraph.dense([784, 256, 128, 10]), loss="softmax_cross_entropy", seed=1)
    X = rng.normal(size=(n, 784))
    Y = np.eye(10)[rng.integers(0, 10, n)]
    rows = rng.integers(0, n, (steps, b))
    gpu = on_device(net.astype("float32"))
    tr = CudaGraphTrainer(gpu, X, Y, b, "sgd", steps_per_graph=4)
    tr.run(rows, [ETA] * steps)
    tr.sync()
    opt, eng = get_optimizer("sgd", net), ReferenceEngine()
    for r in rows:
        _, gW, gb = combine(*eng.gradient_sums(net, X[r], Y[r], None))
        opt.step(net, gW, gb, ETA)
    err = max(float(np.max(np.abs(w.cpu().numpy() - v)) / np.max(np.abs(v))) for w, v in zip(gpu.W, net.W))
    return err


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter timings (about 1 minute)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--smoke-cpu", action="store_true",
                   help="developers: run this script's logic on the CPU with tiny sizes (no graphs, no figures)")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    global DEV, SIZES, BATCHES, N_ROWS
    if args.smoke_cpu and torch is not None:
        DEV, SIZES, BATCHES, N_ROWS = "cpu", [(784, 16, 8, 10)], [64], 512
    elif torch is None or not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return 0
    import layerprop as lp
    from layerprop.device import set_tf32

    sync = torch.cuda.synchronize if DEV == "cuda" else (lambda: None)
    seconds = 0.6 if args.quick else 1.5
    if DEV == "cuda":
        set_tf32(False)
        props = torch.cuda.get_device_properties(0)
        name = props.name
        print(f"device: {name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}, float32 strict (TF32 off)")
    else:
        name, seconds = "cpu (smoke check; the figures mean nothing)", 0.05
        print(f"device: {name}")
    try:
        import jax
        jax.devices("gpu")
        has_jax = f"jax {jax.__version__}"
    except Exception as e:  # noqa: BLE001 -- a peer not installed (or without a GPU backend) is skipped
        has_jax = None
        print(f"JAX: skipped ({type(e).__name__}: {e})"[:200])
    mm = 8192 if DEV == "cuda" else 512
    rate = matmul_rate(torch, n=mm)
    print(f"float32 matrix-product rate ({mm}^3, measured now): {rate / 1e12:.2f} TFLOP/s")
    err = equality_check(torch, n=1024 if DEV == "cuda" else 256)
    print(f"equality: 20 graph-captured float32 steps vs the float64 CPU reference: max rel. error {err:.2e}")
    results = {"device": name, "matmul_tflops": rate / 1e12, "equality_rel_err": err, "runs": []}
    header = f"{'network':>17} {'batch':>5} {'peer':>22} {'examples/s':>12} {'GFLOP/s':>9} {'vs torch graph':>14} {'of matmul':>9}"
    print(header)
    for sizes in SIZES:
        flops = train_flops(sizes)
        net = lp.Network(lp.LayeredGraph.dense(list(sizes)), loss="softmax_cross_entropy", dtype="float32", seed=0)
        g = torch.Generator(device=DEV).manual_seed(0)
        X = torch.randn(N_ROWS, sizes[0], device=DEV, generator=g)
        labels = torch.randint(0, sizes[-1], (N_ROWS,), device=DEV, generator=g)
        Y = torch.nn.functional.one_hot(labels, sizes[-1]).float()
        for b in BATCHES:
            S = STEPS_PER_GRAPH[b]
            m = S * max(1, 256 // S) if b == 64 else S * max(1, 32 // S)  # steps per timed block
            m = m if DEV == "cuda" else S
            rows = torch.randint(0, N_ROWS, (m, b), device=DEV, generator=g)
            # each peer is made right before it is timed and dropped after (one peer's CUDA graph and
            # buffers at a time); every torch peer ends its timed repeats with torch's device sync
            peers = {
                "layerprop (CUDA graph)": lambda: (layerprop_block(net, X, Y, rows, b, DEV == "cuda"), sync),
                "layerprop (eager)": lambda: (layerprop_block(net, X, Y, rows, b, False), sync),
                "PyTorch eager": lambda: (torch_eager_block(torch, net, X, labels, rows), sync),
            }
            if DEV == "cuda":
                peers["PyTorch CUDA graph"] = lambda: (torch_graph_block(torch, net, X, labels, rows), sync)
            if has_jax:
                peers["JAX jit"] = lambda: jax_block(net, X.cpu().numpy(), labels.cpu().numpy(), rows.cpu().numpy())
            eps = {}
            for name, make in peers.items():
                try:
                    block, peer_sync = make()
                    eps[name] = timed(block, m * b, seconds, peer_sync)
                except Exception as e:  # noqa: BLE001 -- a failing peer is reported, never faked
                    print(f"  {name}: failed ({type(e).__name__}: {e})"[:300])
                block = peer_sync = None
                if DEV == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.empty_cache()
            ref = eps.get("PyTorch CUDA graph")
            for name, v in eps.items():
                gf = v * flops / 1e9
                vs = f"{v / ref:.2f}x" if ref else "-"
                print(f"{'-'.join(map(str, sizes)):>17} {b:>5} {name:>22} {v:>12,.0f} {gf:>9,.0f} {vs:>14} "
                      f"{gf * 1e9 / rate:>8.0%}")
                results["runs"].append({"sizes": sizes, "batch": b, "peer": name, "examples_per_s": v,
                                        "gflops": gf, "vs_torch_graph": v / ref if ref else None,
                                        "of_matmul_rate": gf * 1e9 / rate})
            del peers
    pick = {(r["sizes"], r["batch"], r["peer"]): r for r in results["runs"]}
    small = pick.get(((784, 256, 128, 10), 64, "layerprop (CUDA graph)"))
    big = pick.get(((784, 2048, 2048, 10), 4096, "layerprop (CUDA graph)"))
    print("targets (issue 7):")
    if small and small["vs_torch_graph"]:
        print(f"  784-256-128-10, batch 64: {small['vs_torch_graph']:.2f}x PyTorch CUDA graph (target >= 1.2x)")
    if big:
        print(f"  784-2048-2048-10, batch 4096: {big['of_matmul_rate']:.0%} of the matmul rate (target >= 95%)")
    print(f"  equality with the CPU reference: {err:.1e} (float32 tolerance)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
