"""The compiled engine: the book's SGD with batch size 1 (SSBD 20.6) as one numba loop.

For each iteration i: forward on row ``rows[i]``, delta_T, then from the output layer down
delta_t = W_t^T g_{t+1} (with the old W_t) and the update W_t <- W_t - eta_i (g_{t+1} o_t^T + lam W_t)
on the edges of E only (phantom entries are never written, so they stay exactly 0.0).
``g[t] = delta[t] * sigma'(a[t])`` is the folded variant (named g as in ``backprop.py``).

Layer 0 holds most of the weights (784 x 100 of the 79,510 in 784-100-10), so its per-example
read and write of W_0 bounds the loop. With a dense W_0, ``run_blocked`` computes the same
iterates K examples at a time: W_0 x_s from W_0 at the block's start plus a rank-s correction,
W_0 written once per block by one matrix product (see its docstring). Masked W_0: ``run``.

The compiled code itself lives in ``_compiled.py``. numba is an optional extra (``pip install
layerprop[fast]``): it is imported and the loops are compiled on first use, not when layerprop is
imported (``cache=True`` keeps the machine code on disk for the next process: ~0.5 s instead of
4-8 s). Where numba is missing, :class:`~.numpy_fast.NumpyEngine` runs the same algorithm as a
NumPy loop. Minibatches (b > 1) run in ``run_minibatch_sgd`` (``numba_batch.py``) where it
applies, else in the NumPy engine's ``gradient_sums``.
"""

from __future__ import annotations

import importlib.util
import types

import numpy as np

from ..memmap import release_pages
from .numpy_fast import FUSED_MIN_ELEMENTS, NumpyEngine
from .numpy_fast import supports as numpy_supports

ACTIVATION_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4, "softplus": 5}
LOSS_CODES = {"squared": 0, "softmax_cross_entropy": 1, "binary_cross_entropy": 2}
LEAKY_SLOPE = 0.01
MEMMAP_CHUNK = 8192  # rows read at a time from a memory-mapped X (a multiple of NumbaEngine.block)


def available() -> bool:
    """True when numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def supports(net) -> bool:
    """True when the compiled loop computes this network."""
    return numpy_supports(net) and all(f.name in ACTIVATION_CODES for f in net.act[1:])


def _kernel():
    """The compiled loops (``_compiled``: imports numba, compiles or loads from the cache on first use)."""
    from . import _compiled
    return _compiled.run, _compiled.run_blocked, _compiled.run_blocked_parallel


_BLAS = None


def _one_blas_thread():
    """A context in which the BLAS libraries run one thread each.

    The blocked loop's matrix products are small (W_0 times a block of 64 examples) and come
    between short sequential steps: a second BLAS thread costs a wake-up per product, and on a
    busy machine waits for a time slice (measured: 1-thread products 2.6 us per example,
    2-thread products on a loaded machine 10-700 us)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _blas_controller():
    """One threadpoolctl controller for the process (made after SciPy's BLAS is loaded)."""
    global _BLAS
    if _BLAS is None:
        import scipy.linalg.cython_blas  # noqa: F401  (the loops call SciPy's BLAS: load it first)
        from threadpoolctl import ThreadpoolController
        _BLAS = ThreadpoolController()
    return _BLAS


class NumbaEngine(NumpyEngine):
    """The NumPy engine's gradient sums, plus the book's SGD as compiled loops: batch 1
    (``run_book_sgd``) and float32 minibatches (``run_minibatch_sgd``)."""

    name = "numba"
    #: examples per block of the dense-W_0 loop (``run_blocked``); 1 = W_0 written every example
    block = 64
    #: threads for the compiled loops (the batch-1 blocks' products, the minibatch loop; None:
    #: numba's pool, at most the BLAS limit, see ``numba_batch.threads``)
    threads = None

    def one_blas_thread(self):
        """A context with one thread for every BLAS library (see ``_one_blas_thread``), for the
        NumPy work between the compiled loops' calls; the loops keep the thread count the limits
        gave before it (``threads``, fixed here where it was None)."""
        if self.threads is None:
            from . import numba_batch
            self.threads = numba_batch.threads()
        return _one_blas_thread()

    def _threads(self):
        from . import numba_batch
        if not numba_batch.usable():  # a forked child: no OpenMP pool there
            return 1
        P = self.threads or numba_batch.threads()
        if P > 1:
            numba_batch.started()
        return P

    def run_book_sgd(self, net, X, Y, rows, etas, lam, regularize_bias=True):
        """The book's SGD (SSBD 20.6) with batch size 1 for ``len(rows)`` iterations, in place;
        returns the sum of the losses l(w^(i)) on the rows used."""
        dt = net.W[0].dtype
        W, b, has_bias = contiguous_params(net)
        M = tuple(np.ascontiguousarray(m, dtype=np.bool_) for m in net.masks)
        dense = np.array([bool(np.all(m)) for m in M], dtype=np.bool_)
        bM = tuple(np.ascontiguousarray(m, dtype=np.bool_) for m in net.bias_masks) \
            if has_bias and net.bias_masks is not None else tuple(np.ones(len(v), np.bool_) for v in b)
        acts = np.array([0] + [ACTIVATION_CODES[f.name] for f in net.act[1:]], dtype=np.int64)
        a = tuple(np.zeros(k, dt) for k in net.k)
        o = tuple(np.zeros(k, dt) for k in net.k)
        g = tuple(np.zeros(k, dt) for k in net.k)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if isinstance(X, np.memmap) and len(rows):  # data on disk: read the rows a chunk at a time
            total, etas = 0.0, np.broadcast_to(np.asarray(etas), rows.shape)
            for s in range(0, len(rows), MEMMAP_CHUNK):
                r = rows[s:s + MEMMAP_CHUNK]
                total += self.run_book_sgd(net, X[r], np.asarray(Y)[r], np.arange(len(r)),
                                           etas[s:s + MEMMAP_CHUNK], lam, regularize_bias)
            release_pages(X)  # pages mapped by other accesses leave resident memory too
            return total
        X, Y = _rows_source(X, dt), _rows_source(Y, dt)
        etas = np.ascontiguousarray(np.broadcast_to(np.asarray(etas, dtype=dt), rows.shape))
        lam_b = lam if regularize_bias else 0.0
        run, run_blocked, run_blocked_parallel = _kernel()
        args = (W, b, M, bM, dense, has_bias, acts, LOSS_CODES[net.loss.name], X, Y, rows, etas,
                dt.type(lam), dt.type(lam_b), a, o, g, np.array([0, 1, LEAKY_SLOPE], dtype=dt))
        # blocks need the decays 1 - eta_i lam well away from 0 (their products over a block scale W_0)
        if dense[0] and self.block > 1 and (len(etas) == 0 or float(np.max(etas)) * lam <= 0.5):
            P = self._threads()
            with _one_blas_thread():
                if P > 1:
                    from .numba_batch import call_parallel
                    total = call_parallel(run_blocked_parallel, *args, dt == np.float32, self.block, MEMMAP_CHUNK, P)
                else:
                    total = run_blocked(*args, dt == np.float32, self.block, MEMMAP_CHUNK)
        else:
            total = run(*args, np.zeros(net.k[1], dt), dt == np.float32)
        write_back(net, W, b)
        return float(total)

    def minibatch_ok(self, net, b, optimizer="sgd") -> bool:
        """Whether ``run_minibatch_sgd`` runs this network with batches of b rows and this update
        rule: float32, the fused kernels' activations and losses, sgd/momentum/nesterov/adam, and
        batches of at least ``FUSED_MIN_ELEMENTS`` activations in the widest layer (smaller ones
        never pay numba's import and start-up)."""
        from . import numba_batch
        return (b > 1 and optimizer in numba_batch.RULES and numba_batch.supports(net)
                and b * max(net.k[1:]) >= FUSED_MIN_ELEMENTS and numba_batch.usable())

    def measures_norm(self, b, opt=None) -> bool:
        """Whether ``run_minibatch_sgd`` with batches of b rows fills ``norm_out`` (the last
        iteration's gradient norm, measured inside the loop)."""
        from . import numba_batch
        return numba_batch.measures_norm(b, self._threads(), opt)

    def run_minibatch_sgd(self, net, X, Y, rows, etas, lam, regularize_bias=True, opt=None, norm_out=None):
        """SGD (SSBD 20.6) on the minibatches ``rows`` (m x b, b > 1), in place, as one compiled
        loop (``numba_batch``; float32): the book's update, or the update rule ``opt`` (momentum,
        nesterov, adam: its state is updated in place); returns the sum of the losses at the
        iterates. Rows of a memory-mapped X are read ``MEMMAP_CHUNK`` examples at a time.
        ``norm_out``: a list that receives the last iteration's ||v_i|| where ``measures_norm``."""
        from . import numba_batch

        rows = np.ascontiguousarray(rows, dtype=np.int64)
        etas = np.ascontiguousarray(np.broadcast_to(np.asarray(etas, dtype=np.float64), rows.shape[:1]))
        dt = net.W[0].dtype
        if isinstance(X, np.memmap) or isinstance(Y, np.memmap):
            total, per = 0.0, max(1, MEMMAP_CHUNK // rows.shape[1])
            for s in range(0, len(rows), per):
                r = rows[s:s + per]
                flat = r.ravel()
                total += numba_batch.run_minibatch_sgd(
                    net, _rows_source(X[flat], dt), _rows_source(np.asarray(Y)[flat], dt),
                    np.arange(flat.size, dtype=np.int64).reshape(r.shape), etas[s:s + per], lam, regularize_bias,
                    n_threads=self._threads(), opt=opt, norm_out=norm_out)
            for A in (X, Y):
                if isinstance(A, np.memmap):
                    release_pages(A)
            return total
        return numba_batch.run_minibatch_sgd(net, _rows_source(X, dt), _rows_source(Y, dt), rows, etas, lam,
                                             regularize_bias, n_threads=self._threads(), opt=opt, norm_out=norm_out)


def contiguous_params(net):
    """(W, b, has_bias) for the compiled loops: C-ordered weights (copies only where ``net``'s are
    not; ``write_back`` returns them), and empty bias placeholders where the network has none."""
    W = tuple(np.ascontiguousarray(w) for w in net.W)
    has_bias = net.b[0] is not None
    b = (tuple(np.ascontiguousarray(v) for v in net.b) if has_bias
         else tuple(np.zeros(0, net.W[0].dtype) for _ in range(net.T)))
    return W, b, has_bias


def write_back(net, W, b):
    """Copy the compiled loop's weights into ``net`` where they were contiguous copies of its own."""
    for t in range(net.T):
        if W[t] is not net.W[t]:
            net.W[t][...] = W[t]
        if net.b[t] is not None and b[t] is not net.b[t]:
            net.b[t][...] = b[t]


def _rows_source(X, dt):
    """X as a plain C-contiguous ndarray of dtype dt (a memmap is viewed, not copied)."""
    X = np.asarray(X)
    if X.dtype != dt or not X.flags.c_contiguous:
        X = np.ascontiguousarray(X, dtype=dt)
    return X


# -- fused element-wise kernels for minibatches (float32) -----------------------------------------
# The NumPy engine's element-wise work (bias add + sigmoid, sigma' from o, the output delta, the
# book's update) as single passes over each array, rows split over the cores (numba prange).
# sigmoid uses a vectorizable float32 exp (Cody-Waite reduction + Cephes' degree-5 polynomial,
# ~1 ulp; numba without SVML calls the scalar libm expf, 3x slower than NumPy's SIMD exp).
# float64 stays on NumPy (its exp is what the float64 <= 1e-12 tests compare against).
# The engine calls the one-thread variants. The ``*_par`` variants (prange over rows, numba's
# thread pool) are 2-5x faster alone but were 10-100x slower inside a training step on this
# 2-vCPU machine: OpenBLAS's worker keeps spinning on the second core between GEMMs, so numba's
# worker waits for a scheduler time slice (measured: batch 1024, 164k -> 19k examples/s).
FUSED_ACTS = {"identity": 0, "sigmoid": 1, "relu": 3, "leaky_relu": 4}


def fused_kernels():
    """The fused kernels (``bias_act``, ``times_prime``, ``squared_out``, ``softmax_out``, ``update``;
    ``*_par``: rows split over the threads) from ``_compiled`` (imports numba on the first call)."""
    from . import _compiled as c
    return types.SimpleNamespace(
        bias_act=c.bias_act, bias_act_par=c.bias_act_par, times_prime=c.times_prime,
        times_prime_par=c.times_prime_par, squared_out=c.squared_out, squared_out_par=c.squared_out_par,
        softmax_out=c.softmax_out, softmax_out_par=c.softmax_out_par, update=c.book_update,
        update_par=c.book_update_par)
