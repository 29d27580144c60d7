"""The compiled minibatch loop: the book's SGD with batches of b > 1 rows (SSBD 20.6) as one
numba function over many iterations, float32 (the code: ``_compiled.run_minibatch``).

Each iteration is two parallel regions on P threads (numba's pool), three for small batches,
every matrix product a one-thread SciPy BLAS call on the thread's own share:

0. small batches (b < ``SPLIT_MIN_ROWS`` or one thread): thread p takes its neurons r of layer 1,
   copies the batch's rows of X into its own buffer and computes o_1[:, r] = sigma(X_b W_0[r]^T
   + b_0[r]); each thread then packs only its rows of W_0 for the product (split by examples,
   every thread packs all of W_0, the largest operand of a small batch's step);
1. thread p takes rows ``lo_p:hi_p`` of the batch: gathers them, runs the forward pass
   o_{t+1} = sigma(W_t o_t + b_t) (from layer 1 on after region 0), the output's
   g_T = delta_T sigma'(a_T) and the loss, and the backward pass g_t = (g_{t+1} W_t) sigma'(a_t),
   with the fused float32 element-wise kernels; with ``split`` (P > 1 and b >= ``SPLIT_MIN_ROWS``)
   it also sums its own rows' weight gradient, C_p = g_{t+1}[lo:hi]^T o_t[lo:hi] (its rows are
   still in its cache);
2. thread p takes its rows r of every W_t and writes the book's update,
   W_t[r] <- (1 - eta lam) W_t[r] - (eta / b) sum_p C_p[r] (split), or without ``split`` its
   columns c straight from the product, W_t[:, c] <- (1 - eta lam) W_t[:, c] -
   (eta / b) g_{t+1}^T o_t[:, c] (one GEMM with beta), and for W_0 its rows of region 0 from its
   copy of X_b; the same for b_t; phantom entries are set back to 0 (masked layers). The update
   rules (momentum, nesterov, adam) apply to the same rows, or columns and rows, from the summed
   gradient (split: the threads' parts added up; small batches: its share written by one GEMM).

Why: with NumPy's two-thread OpenBLAS the element-wise passes run on one core while OpenBLAS's
second thread spins, every step pays some 25 NumPy calls, and the update is a separate pass over
W after the weight-gradient product (BENCHMARKS.md). Here one thread pool does everything.

The numbers are the reference's up to float32 rounding (the update is computed as
beta W + alpha G rather than W - eta (G / b + lam W), and the batch's sum in P parts);
``tests/test_numba_batch.py`` compares with the book's loop in float64.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .numba_single import LEAKY_SLOPE

# activations of the fused float32 kernels (numba_single.FUSED_ACTS) and the losses handled here
ACTIVATION_CODES = {"identity": 0, "sigmoid": 1, "relu": 3, "leaky_relu": 4}
LOSSES = ("squared", "softmax_cross_entropy")
RULES = ("sgd", "momentum", "nesterov", "adam")  # the update rules of optim.py the loop runs
# batches of at least this many rows (and > 1 thread): each thread sums its own rows' gradient;
# smaller ones share out W_0's rows first (measured, 2 threads, ex/s without / with the split:
# 784-256-128-10 at 96 rows 166k / 161k, at 128 rows 166k / 181k; 784-64-10 at 128 rows 503k /
# 621k; 784-2048-10 at 128 rows 37k / 33k, at 512 rows 42k / 44k)
SPLIT_MIN_ROWS = 128

_STARTED_IN = None  # the process that first ran a parallel loop (numba's thread pool lives there)
_LAYER = None  # numba's threading layer, known after the first parallel call
_LOCK = threading.Lock()


def supports(net) -> bool:
    """True when the compiled minibatch loop computes this network: NumPy float32 weights, the
    fused kernels' activations, squared loss or softmax cross-entropy (identity output)."""
    acts = [f.name for f in net.act[1:]]
    return (isinstance(net.W[0], np.ndarray) and net.W[0].dtype == np.float32
            and all(a in ACTIVATION_CODES for a in acts) and net.loss.name in LOSSES
            and (net.loss.name != "softmax_cross_entropy" or acts[-1] == "identity"))


def kernel():
    """The compiled loop (imports numba and compiles, or loads from the cache, on the first call)."""
    from . import _compiled
    started()
    return _compiled.run_minibatch


def started():
    """Note that this process starts numba's thread pool (see ``usable``)."""
    global _STARTED_IN
    if _STARTED_IN is None:
        _STARTED_IN = os.getpid()


def usable() -> bool:
    """False in a child forked after this process ran a parallel loop: GNU OpenMP (numba's "omp" thread
    pool, the fastest here) cannot start its threads again after a fork, and numba terminates such
    a child; there the training loop takes the NumPy engine's step instead."""
    return _STARTED_IN is None or _STARTED_IN == os.getpid()


def call_parallel(fn, *args):
    """``fn(*args)`` for a compiled ``parallel=True`` function. Under numba's "workqueue" layer (the
    one left where neither OpenMP nor TBB is installed), which aborts the process when two Python
    threads launch parallel code at once, the calls take turns; under "omp" and "tbb" they run
    concurrently."""
    global _LAYER
    started()
    if _LAYER is not None and _LAYER != "workqueue":
        return fn(*args)
    with _LOCK:
        out = fn(*args)
        if _LAYER is None:
            import numba
            _LAYER = numba.threading_layer()
        return out


def threads() -> int:
    """Threads for the loop: numba's pool, at most what the BLAS pools are limited to (so that
    ``threadpoolctl.threadpool_limits(1)`` or ``--threads 1`` keeps it on one core)."""
    import numba

    from .numba_single import _blas_controller
    blas = [lc.num_threads for lc in _blas_controller().select(user_api="blas").lib_controllers]
    return max(1, min([numba.get_num_threads()] + blas))


def splits(n, P):
    """Whether the loop runs batches of n rows on P threads with ``split`` (each thread sums its
    own rows' gradient)."""
    return P > 1 and n >= SPLIT_MIN_ROWS


def measures_norm(n, P, opt=None):
    """Whether the loop has each batch's summed gradient, and so measures the last iteration's
    gradient norm: with ``split``, or for an update rule (momentum, nesterov, adam)."""
    return splits(n, P) or (opt is not None and opt.name != "sgd")


def run_minibatch_sgd(net, X, Y, rows, etas, lam, regularize_bias=True, n_threads=None, split=None, opt=None,
                      norm_out=None):
    """The book's SGD (SSBD 20.6) on the batches ``rows`` (m x b), in place on ``net``'s float32
    weights; returns the sum of the losses at the iterates used. X, Y: float32 C-contiguous
    arrays (the caller copies a memmap's rows first). ``opt``: an ``optim`` update rule of this
    network (momentum, nesterov, adam; its state is updated in place and its step count by m);
    None or the book's "sgd": the book's update. ``norm_out``: a list that receives the last
    iteration's ||v_i|| (the mean gradient over its batch, real edges) where ``measures_norm``."""
    from .numba_single import _one_blas_thread, contiguous_params, write_back

    T, dt = net.T, np.float32
    m, n = rows.shape
    P = max(1, min(n_threads or threads(), n))
    W, b, has_bias = contiguous_params(net)
    masks = [np.asarray(mk, dtype=np.bool_) for mk in net.masks]
    dense = np.array([bool(mk.all()) for mk in masks])
    off = tuple(np.logical_not(mk) for mk in masks)
    bms = net.bias_masks if has_bias and net.bias_masks is not None else [None] * T
    boff = tuple(np.zeros(len(v), np.bool_) if mk is None else np.logical_not(np.asarray(mk, np.bool_))
                 for v, mk in zip(b, bms))
    acts = np.array([0] + [ACTIVATION_CODES[f.name] for f in net.act[1:]], dtype=np.int64)
    O = tuple(np.empty((n, k), dt) for k in net.k)
    G = (np.empty((n, 1), dt),) + tuple(np.empty((n, k), dt) for k in net.k[1:])
    gb = tuple(np.empty(k, dt) for k in net.k[1:])
    code = RULES.index(opt.name) if opt is not None else 0
    if split is None:
        split = splits(n, P)
    S1W, S2W, S1b, S2b, hyp, t0 = _rule_state(opt, code, W, b)
    # split: each thread's part of the summed gradient; small batches with a rule: the whole sum
    Cp = tuple(np.empty((P, *w.shape) if split else (1, *w.shape) if code else (1, 1, 1), dt) for w in W)
    bp = tuple(np.empty((P, w.shape[0]) if split else (P, 1), dt) for w in W)
    XP = np.empty((P, 1, 1) if split else (P, n, net.k[0]), dt)  # small batches: each thread's copy of X_b
    sq = np.zeros(P)
    etas = np.ascontiguousarray(np.broadcast_to(np.asarray(etas, dt), (m,)))
    lam_b = lam if regularize_bias else 0.0
    with _one_blas_thread():
        total = call_parallel(kernel(), W, b, has_bias, dense, off, boff, acts, LOSSES.index(net.loss.name), X, Y,
                              rows, etas, dt(lam), dt(lam_b), O, G, gb, np.empty((n, net.k[-1]), dt), np.empty(n),
                              np.frombuffer(b"NT", np.uint8).copy(), np.zeros((P, 6), np.int32),
                              np.zeros((P, 2), dt), dt(LEAKY_SLOPE), P, split, Cp, bp, code, hyp, t0, S1W, S2W,
                              S1b, S2b, XP, sq)
    write_back(net, W, b)
    if norm_out is not None and (split or code) and m:
        norm_out.append(float(np.sqrt(sq.sum())) / n)
    if code:
        opt.t += m
    return float(total)


def _rule_state(opt, code, W, b):
    """The update rule's state arrays per layer (velocity; or Adam's m and s), its constants
    (mu, beta_1, beta_2, epsilon) and step count, in the loop's form (placeholders for "sgd")."""
    dt = np.float32
    if code == 0:
        empty = tuple(np.zeros((1, 1), dt) for _ in W)
        return empty, empty, tuple(np.zeros(1, dt) for _ in W), tuple(np.zeros(1, dt) for _ in W), np.zeros(4), 0
    names = ("velocity", "velocity") if code < 3 else ("m", "s")
    S1W, S1b = opt.state[names[0]]
    S2W, S2b = opt.state[names[1]]
    def none(arrs):  # the bias slots of a network without biases: placeholders
        return tuple(np.zeros(len(v), dt) if a is None else a for a, v in zip(arrs, b))
    hyp = (np.array([opt.mu, 0.0, 0.0, 0.0]) if code < 3
           else np.array([0.0, opt.beta_1, opt.beta_2, opt.epsilon]))
    return tuple(S1W), tuple(S2W), none(S1b), none(S2b), hyp, int(opt.t)
