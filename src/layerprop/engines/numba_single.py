"""The compiled engine: the book's SGD with batch size 1 (SSBD 20.6) as one numba loop.

For each iteration i: forward on row ``rows[i]``, delta_T, then from the output layer down
delta_t = W_t^T g_{t+1} (with the old W_t) and the update W_t <- W_t - eta_i (g_{t+1} o_t^T + lam W_t)
on the edges of E only (phantom entries are never written, so they stay exactly 0.0).
``g[t] = delta[t] * sigma'(a[t])`` is the folded variant (named g as in ``backprop.py``).

Layer 0 holds most of the weights (784 x 100 of the 79,510 in 784-100-10), so its per-example
read and write of W_0 bounds the loop. With a dense W_0, ``run_blocked`` computes the same
iterates K examples at a time: W_0 x_s from W_0 at the block's start plus a rank-s correction,
W_0 written once per block by one matrix product (see its docstring). Masked W_0: ``run``.

numba is an optional extra (``pip install layerprop[fast]``): it is imported and the loop is
compiled on first use, not when layerprop is imported (``cache=True`` keeps the machine code on
disk for the next process). Where numba is missing, :class:`~.numpy_fast.NumpyEngine` runs the
same algorithm as a NumPy loop. Batches larger than 1 use the NumPy engine's ``gradient_sums``.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ..memmap import release_pages
from .numpy_fast import FUSED_MIN_ELEMENTS, NumpyEngine, supports as numpy_supports

ACTIVATION_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4, "softplus": 5}
LOSS_CODES = {"squared": 0, "softmax_cross_entropy": 1, "binary_cross_entropy": 2}
LEAKY_SLOPE = 0.01
MEMMAP_CHUNK = 8192  # rows read at a time from a memory-mapped X (a multiple of NumbaEngine.block)

_KERNEL = None


def available() -> bool:
    """True when numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def supports(net) -> bool:
    """True when the compiled loop computes this network."""
    return numpy_supports(net) and all(f.name in ACTIVATION_CODES for f in net.act[1:])


def _kernel():
    """The compiled loops (imports numba and compiles on the first call)."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _build()
    return _KERNEL


_BLAS = None


def _gemms():
    """SciPy's BLAS sgemm and dgemm as external functions that numba code can call (every
    argument by reference, as Fortran BLAS takes them). They are registered with LLVM under names
    of their own and called by name, so the machine code in numba's cache finds them again in the
    next process (a ctypes function would put this process's address into the cached code)."""
    import llvmlite.binding as ll
    import scipy.linalg.cython_blas  # noqa: F401
    from numba import types
    from numba.extending import get_cython_function_address

    signature = types.void(*([types.voidptr] * 13))
    out = []
    for name in ("sgemm", "dgemm"):
        symbol = f"layerprop_scipy_{name}"
        ll.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", name))
        out.append(types.ExternalFunction(symbol, signature))
    return tuple(out)


def _make_gemm(jit):
    """``gemm``: SciPy's sgemm/dgemm (``_gemms``) as a numba function taking arrays."""
    gemms = _gemms()

    @jit
    def gemm(is32, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, Cm, ldc, chars, ints, scal):
        """Cm <- alpha op(A) op(B) + beta Cm by SciPy's BLAS, in its column-major terms (a C-order
        array is its transpose there; ta, tb: 0 'N', 1 'T'). chars ('N', 'T'), ints and scal: scratch
        arrays for the arguments BLAS takes by reference."""
        ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = m, n, k, lda, ldb, ldc
        scal[0], scal[1] = alpha, beta
        args = (chars[ta:].ctypes, chars[tb:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
                scal[0:].ctypes, A.ctypes, ints[3:].ctypes, B.ctypes, ints[4:].ctypes, scal[1:].ctypes,
                Cm.ctypes, ints[5:].ctypes)
        if is32:
            gemms[0](*args)
        else:
            gemms[1](*args)
    return gemm


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


def _build():
    import numba
    from numba import prange

    jit = numba.njit(cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"}, nogil=True, error_model="numpy")
    exp32 = _make_exp32(inline="always")  # inlined: the loops that call it vectorize
    # the steps of one example, inlined into the loop at numba's level: arrays passed across a
    # call cost atomic reference-count updates per call
    step = numba.njit(inline="always", fastmath={"reassoc", "contract", "nsz", "arcp"}, error_model="numpy")

    gemm = _make_gemm(jit)

    @jit
    def sigma(code, a, c):
        """sigma_t(a) for one neuron (c = the constants 0, 1, leaky slope in a's dtype)."""
        if code == 1:
            if a >= c[0]:
                return c[1] / (c[1] + np.exp(-a))
            e = np.exp(a)
            return e / (c[1] + e)
        if code == 2:
            return np.tanh(a)
        if code == 3:
            return a if a > c[0] else c[0]
        if code == 4:
            return a if a > c[0] else a * c[2]
        if code == 5:
            return max(a, c[0]) + np.log1p(np.exp(-abs(a)))
        return a

    @jit
    def sigma_prime(code, a, o, c):
        """sigma_t'(a) for one neuron, from o = sigma_t(a) where possible."""
        if code == 1:
            return o * (c[1] - o)
        if code == 2:
            return c[1] - o * o
        if code == 3:
            return c[1] if o > c[0] else c[0]
        if code == 4:
            return c[1] if o > c[0] else c[2]
        if code == 5:
            return sigma(1, a, c)
        return c[1]

    @jit
    def dot_row(Wt, i, x):
        """sum_j W_t[i, j] x_j."""
        s = Wt[i, 0] * x[0]
        for j in range(1, Wt.shape[1]):
            s += Wt[i, j] * x[j]
        return s

    @step
    def layer_forward(Wt, bt, has_bias, code, ot, at, on, c):
        """One layer of the forward pass (SSBD 20.6): a_{t+1} = W_t o_t + b_t, o_{t+1} = sigma(a_{t+1})."""
        for i in range(Wt.shape[0]):
            s = Wt[i, 0] * ot[0]
            for j in range(1, Wt.shape[1]):
                s += Wt[i, j] * ot[j]
            if has_bias:
                s += bt[i]
            at[i] = s
            on[i] = sigma(code, s, c)

    @step
    def output_g(loss, act_T, a_T, o_T, y, g_T, c):
        """g_T = delta_T * sigma'(a_T) into g_T; returns the loss on this example."""
        k = o_T.shape[0]
        total = 0.0
        if loss == 0:  # squared: 1/2 ||o - y||^2, delta_T = o - y
            for i in range(k):
                d = o_T[i] - y[i]
                total += 0.5 * d * d
                g_T[i] = d * sigma_prime(act_T, a_T[i], o_T[i], c)
        elif loss == 1:  # softmax cross-entropy on the logits o_T (identity output)
            m = o_T[0]
            for i in range(1, k):
                m = max(m, o_T[i])
            s = 0.0
            sy = 0.0
            syo = 0.0
            for i in range(k):
                s += np.exp(o_T[i] - m)
                sy += y[i]
                syo += y[i] * o_T[i]
            total = sy * (m + np.log(s)) - syo
            for i in range(k):
                g_T[i] = np.exp(o_T[i] - m) / s * sy - y[i]
        else:  # binary cross-entropy, sigmoid output: softplus(a) - y a, g_T = sigma(a) - y
            for i in range(k):
                total += sigma(5, a_T[i], c) - y[i] * a_T[i]
                g_T[i] = o_T[i] - y[i]
        return total

    @step
    def layer_backward(Wt, gn, gt, code, at, ot, c):
        """delta_t = W_t^T g_{t+1} (with W_t before its update), then g_t = delta_t sigma'(a_t)."""
        for j in range(gt.shape[0]):
            gt[j] = 0
        for i in range(Wt.shape[0]):
            for j in range(Wt.shape[1]):
                gt[j] += Wt[i, j] * gn[i]
        if code == 1:  # sigmoid: o (1 - o), one vectorizable loop
            for j in range(gt.shape[0]):
                gt[j] *= ot[j] * (c[1] - ot[j])
        else:
            for j in range(gt.shape[0]):
                gt[j] *= sigma_prime(code, at[j], ot[j], c)

    @step
    def layer_update(Wt, bt, Mt, bMt, dense_t, has_bias, eta, lam, lam_b, gn, ot, c):
        """W_t <- W_t - eta (v + lam W_t) with v_ij = g_{t+1,i} o_{t,j} on the edges of E; the same for b_t."""
        if dense_t:
            keep = c[1] - eta * lam
            for i in range(Wt.shape[0]):
                d = eta * gn[i]
                for j in range(Wt.shape[1]):
                    Wt[i, j] = Wt[i, j] * keep - d * ot[j]
        else:
            for i in range(Wt.shape[0]):
                gi = gn[i]
                for j in range(Wt.shape[1]):
                    if Mt[i, j]:
                        Wt[i, j] -= eta * (gi * ot[j] + lam * Wt[i, j])
        if has_bias:
            for i in range(bt.shape[0]):
                if bMt[i]:
                    bt[i] -= eta * (gn[i] + lam_b * bt[i])

    @jit
    def update_first_bias(b0, bM0, eta, lam_b, g1):
        """b_0 <- b_0 - eta (g_1 + lam b_0) on the bias edges of E."""
        for i in range(b0.shape[0]):
            if bM0[i]:
                b0[i] -= eta * (g1[i] + lam_b * b0[i])

    @jit
    def update_first(W0, b0, bM0, dense0, M0, has_bias, eta, lam, lam_b, g1, x, x_next, z_next, more, c):
        """Layer 0's update W_0 <- W_0 - eta (g_1 x^T + lam W_0), fused with the next example's
        z = W_0 x_next (one pass over W_0 instead of two: each updated row is still in cache)."""
        keep = c[1] - eta * lam
        for i in range(W0.shape[0]):
            gi = g1[i]
            if dense0:  # W_0[i, j] (1 - eta lam) - (eta g_i) x_j: one pass of two multiply-adds
                d, wi, k = eta * gi, W0[i], W0.shape[1]
                w = wi[0] * keep - d * x[0]
                wi[0] = w
                if more:
                    s = w * x_next[0]
                    for j in range(1, k):
                        w = wi[j] * keep - d * x[j]
                        wi[j] = w
                        s += w * x_next[j]
                    z_next[i] = s
                else:
                    for j in range(1, k):
                        wi[j] = wi[j] * keep - d * x[j]
                continue
            else:
                for j in range(W0.shape[1]):
                    if M0[i, j]:
                        W0[i, j] -= eta * (gi * x[j] + lam * W0[i, j])
            if more:
                z_next[i] = dot_row(W0, i, x_next)
        if has_bias:
            update_first_bias(b0, bM0, eta, lam_b, g1)

    @jit
    def hidden_out(acts, a1, o1, c, is32):
        """o_1 = sigma_1(a_1) (float32 sigmoid through the vectorizable exp)."""
        if is32 and acts[1] == 1:
            for i in range(a1.shape[0]):
                o1[i] = c[1] / (c[1] + exp32(-a1[i]))
        else:
            for i in range(a1.shape[0]):
                o1[i] = sigma(acts[1], a1[i], c)

    @jit
    def upper_step(W, b, M, bM, dense, has_bias, acts, loss, y, eta, lam, lam_b, a, o, g, c):
        """From o_1 on: the forward pass, g_T, then for t = T-1..1 g_t with the old W_t and W_t's
        update; leaves g_1 for layer 0's update. Returns l(w) on this example."""
        T = len(W)
        for t in range(1, T):
            layer_forward(W[t], b[t], has_bias, acts[t + 1], o[t], a[t + 1], o[t + 1], c)
        total = output_g(loss, acts[T], a[T], o[T], y, g[T], c)
        for t in range(T - 1, 0, -1):
            layer_backward(W[t], g[t + 1], g[t], acts[t], a[t], o[t], c)
            layer_update(W[t], b[t], M[t], bM[t], dense[t], has_bias, eta, lam, lam_b, g[t + 1], o[t], c)
        return total

    @step
    def one_hidden_step(W1, b1, M1, bM1, dense1, has_bias, act1, act2, loss, y, eta, lam, lam_b,
                        a1, o1, a2, o2, g1, g2, c):
        """upper_step for T = 2 (one hidden layer) on arrays taken out of the tuples once per call:
        a tuple's array taken per example costs atomic reference counts (~10% of the example)."""
        layer_forward(W1, b1, has_bias, act2, o1, a2, o2, c)
        total = output_g(loss, act2, a2, o2, y, g2, c)
        layer_backward(W1, g2, g1, act1, a1, o1, c)
        layer_update(W1, b1, M1, bM1, dense1, has_bias, eta, lam, lam_b, g2, o1, c)
        return total

    @jit
    def run(W, b, M, bM, dense, has_bias, acts, loss, X, Y, rows, etas, lam, lam_b, a, o, g, c, z, is32):
        """The book's SGD with batch size 1 (SSBD 20.6), in place; returns the sum of the losses.
        Layer 0's update is fused with the next example's W_0 x (one pass over W_0)."""
        N = rows.shape[0]
        total = 0.0
        if N > 0:
            for i in range(W[0].shape[0]):
                z[i] = dot_row(W[0], i, X[rows[0]])
        for it in range(N):
            n, eta = rows[it], etas[it]
            x = X[n]
            a1 = a[1]
            for i in range(z.shape[0]):  # a_1 = W_0 x + b_0 (W_0 x computed with the last update)
                a1[i] = z[i] + b[0][i] if has_bias else z[i]
            hidden_out(acts, a1, o[1], c, is32)
            total += upper_step(W, b, M, bM, dense, has_bias, acts, loss, Y[n], eta, lam, lam_b, a, o, g, c)
            more = it + 1 < N
            update_first(W[0], b[0], bM[0], dense[0], M[0], has_bias, eta, lam, lam_b, g[1], x,
                         X[rows[it + 1] if more else n], z, more, c)
        return total

    @jit
    def block_examples(W, b, M, bM, dense, has_bias, acts, loss, Y, rows, etas, lam, lam_b, a, o, g, c, is32, s0,
                       kb, Z, G, U, C):
        """Examples s0 .. s0 + kb - 1 of a block (see ``run_blocked``), one after another: a_1 from
        Z, G and the block's earlier u_r, then the upper layers' steps; writes u_s into U. Returns
        the loss sum and C, the product of the decays so far times S."""
        one = c[1]
        W0, b0 = W[0], b[0]
        k1 = W0.shape[0]
        total = 0.0
        a1, o1, g1, bM0 = a[1], o[1], g[1], bM[0]  # views taken once, outside the loops
        two = len(W) == 2  # one hidden layer: its arrays too (h: an index numba cannot check statically)
        h = 1 if two else 0
        W1, b1, M1, bM1, dense1, a2, o2, g2 = W[h], b[h], M[h], bM[h], dense[h], a[h + 1], o[h + 1], g[h + 1]
        for s in range(kb):
            it = s0 + s
            n, eta = rows[it], etas[it]
            for i in range(k1):
                a1[i] = Z[s, i]
            for r in range(s):
                grs = G[r, s]
                for i in range(k1):
                    a1[i] -= U[r, i] * grs
            if has_bias:
                for i in range(k1):
                    a1[i] = C * a1[i] + b0[i]
            else:
                for i in range(k1):
                    a1[i] = C * a1[i]
            hidden_out(acts, a1, o1, c, is32)
            if two:
                total += one_hidden_step(W1, b1, M1, bM1, dense1, has_bias, acts[1], acts[h + 1], loss, Y[n],
                                         eta, lam, lam_b, a1, o1, a2, o2, g1, g2, c)
            else:
                total += upper_step(W, b, M, bM, dense, has_bias, acts, loss, Y[n], eta, lam, lam_b, a, o, g, c)
            C = C * (one - eta * lam)
            coef = eta / C
            for i in range(k1):
                U[s, i] = coef * g1[i]
            if has_bias:
                update_first_bias(b0, bM0, eta, lam_b, g1)
        return total, C

    @jit
    def gather(X, rows, s0, lo, hi, xb):
        """xb[r] = X[rows[s0 + r]] for r in lo .. hi - 1 (row views: a plain loop is a vector copy)."""
        for r in range(lo, hi):
            xr, xbr = X[rows[s0 + r]], xb[r]
            for j in range(xbr.shape[0]):
                xbr[j] = xr[j]

    @jit
    def run_blocked(W, b, M, bM, dense, has_bias, acts, loss, X, Y, rows, etas, lam, lam_b, a, o, g, c, is32, K,
                    every):
        """The same iterates with a dense W_0, K examples at a time. W_0 is kept as S V (a scalar S,
        the product of the decays 1 - eta lam so far, and V stored in W_0's array); within a block,
        with C_s = prod_{r<s} (1 - eta_r lam) since its start and u_r = eta_r / (S C_{r+1}) g_{1,r}:
            W_0^(s) = S C_s (V - sum_{r<s} u_r x_r^T),  so  W_0^(s) x_s = S C_s (V x_s - sum_{r<s} u_r (x_r . x_s)).
        V x_s for the block and the x_r . x_s are two matrix products; V <- V - U^T X_block is a
        third, once per block, and W_0 = S V is written at the end, every ``every`` examples (so a
        run split into calls of that many rows, as from a memory-mapped file, rounds the same) and
        when S gets small: one pass over W_0 per block instead of a read and a write per example.
        The same numbers in exact arithmetic; the rounding differs from the one-pass loop's."""
        N = rows.shape[0]
        W0 = W[0]
        k1, k0 = W0.shape
        one = c[1]
        total = 0.0
        dt = W0.dtype
        U, xb, Z, G = np.empty((K, k1), dt), np.empty((K, k0), dt), np.empty((K, k1), dt), np.empty((K, K), dt)
        chars, ints, scal = np.array([78, 84], np.uint8), np.zeros(6, np.int32), np.zeros(2, dt)
        S, S_MIN = one, dt.type(0.5)  # W_0 = S V
        for s0 in range(0, N, K):
            kb = min(K, N - s0)
            if kb < K:  # the last, shorter block
                U, xb, Z, G = np.empty((kb, k1), dt), np.empty((kb, k0), dt), np.empty((kb, k1), dt), np.empty((kb, kb), dt)
            gather(X, rows, s0, 0, kb, xb)
            gemm(is32, 1, 0, k1, kb, k0, one, W0, k0, xb, k0, 0, Z, k1, chars, ints, scal)  # Z[s] = V x_s
            gemm(is32, 1, 0, kb, kb, k0, one, xb, k0, xb, k0, 0, G, kb, chars, ints, scal)  # G[r, s] = x_r . x_s
            part, C = block_examples(W, b, M, bM, dense, has_bias, acts, loss, Y, rows, etas, lam, lam_b, a, o, g,
                                     c, is32, s0, kb, Z, G, U, S)
            total += part
            # V <- V - U^T X_block, in place (beta = 1: BLAS adds to V in the same pass)
            gemm(is32, 0, 1, k0, k1, kb, -one, xb, k0, U, k1, one, W0, k0, chars, ints, scal)
            S = C
            if S < S_MIN or s0 + kb == N or (s0 + kb) % every == 0:  # W_0 = S V
                if S != one:
                    for i in range(k1):
                        for j in range(k0):
                            W0[i, j] *= S
                S = one
        return total

    @jit
    def block_products(p, P, W0, xb, Z, G, kb, is32, chars, ints, scal):
        """Thread p's share of a block's two products: Z[s] = V x_s and G[s] = X_block x_s for its
        examples s (G is symmetric: the loop reads G[r, s] with r < s, each computed once)."""
        k1, k0 = W0.shape
        lo, hi = p * kb // P, (p + 1) * kb // P
        if hi > lo:
            one, zero = W0.dtype.type(1.0), W0.dtype.type(0.0)
            gemm(is32, 1, 0, k1, hi - lo, k0, one, W0, k0, xb[lo:], k0, zero, Z[lo:], k1, chars, ints, scal)
            gemm(is32, 1, 0, kb, hi - lo, k0, one, xb, k0, xb[lo:], k0, zero, G[lo:], kb, chars, ints, scal)

    @jit
    def block_update(p, P, W0, xb, U, kb, is32, chars, ints, scal):
        """Thread p's columns of V <- V - U^T X_block (beta = 1)."""
        k1, k0 = W0.shape
        c0, c1 = p * k0 // P, (p + 1) * k0 // P
        if c1 > c0:
            one = W0.dtype.type(1.0)
            gemm(is32, 0, 1, c1 - c0, k1, kb, -one, xb[0, c0:], k0, U, k1, one, W0[0, c0:], k0,
                 chars, ints, scal)

    @numba.njit(cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"}, nogil=True, error_model="numpy",
                parallel=True)
    def run_blocked_parallel(W, b, M, bM, dense, has_bias, acts, loss, X, Y, rows, etas, lam, lam_b, a, o, g, c,
                             is32, K, every, P):
        """``run_blocked`` with its matrix products and row copies shared by P threads (numba's
        pool; one-thread BLAS calls). Per block two parallel regions: (1) thread p's columns of
        the block's V update and its share of the next block's rows (double-buffered), (2) its
        examples' V x_s and X_block x_s. The examples themselves run one after another."""
        N = rows.shape[0]
        W0 = W[0]
        k1, k0 = W0.shape
        one = c[1]
        total = 0.0
        dt = W0.dtype
        U, Z, G = np.empty((K, k1), dt), np.empty((K, k1), dt), np.empty((K, K), dt)
        xbs = (np.empty((K, k0), dt), np.empty((K, k0), dt))
        chars, ints, scal = np.array([78, 84], np.uint8), np.zeros((P, 6), np.int32), np.zeros((P, 2), dt)
        S, S_MIN = one, dt.type(0.5)  # W_0 = S V
        kb = min(K, N)
        for p in prange(P):
            gather(X, rows, 0, p * kb // P, (p + 1) * kb // P, xbs[0])
        j = 0
        for s0 in range(0, N, K):
            kb = min(K, N - s0)
            xb = xbs[j % 2]
            if kb < K:  # the last, shorter block: its own arrays (the rows were gathered into xb)
                xb = np.ascontiguousarray(xb[:kb])
                U, Z, G = np.empty((kb, k1), dt), np.empty((kb, k1), dt), np.empty((kb, kb), dt)
            for p in prange(P):
                block_products(p, P, W0, xb, Z, G, kb, is32, chars, ints[p], scal[p])
            part, C = block_examples(W, b, M, bM, dense, has_bias, acts, loss, Y, rows, etas, lam, lam_b, a, o, g,
                                     c, is32, s0, kb, Z, G, U, S)
            total += part
            s1 = s0 + kb
            kn = min(K, N - s1)
            nxt = xbs[(j + 1) % 2]
            for p in prange(P):
                block_update(p, P, W0, xb, U, kb, is32, chars, ints[p], scal[p])
                if kn > 0:
                    gather(X, rows, s1, p * kn // P, (p + 1) * kn // P, nxt)
            S = C
            if S < S_MIN or s1 == N or s1 % every == 0:  # W_0 = S V
                if S != one:
                    for i in range(k1):
                        for jj in range(k0):
                            W0[i, jj] *= S
                S = one
            j += 1
        return total

    return run, run_blocked, run_blocked_parallel


class NumbaEngine(NumpyEngine):
    """The NumPy engine's gradient sums, plus the book's batch-1 SGD as one compiled loop."""

    name = "numba"
    #: examples per block of the dense-W_0 loop (``run_blocked``); 1 = W_0 written every example
    block = 64
    #: threads for the block products of the dense-W_0 loop (None: numba's pool, at most the BLAS
    #: limit; see ``numba_batch.threads``)
    threads = None

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
        T = net.T
        W = tuple(np.ascontiguousarray(w) for w in net.W)
        has_bias = net.b[0] is not None
        b = tuple(np.ascontiguousarray(v) for v in net.b) if has_bias else \
            tuple(np.zeros(0, dt) for _ in range(T))
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
                    total = run_blocked_parallel(*args, dt == np.float32, self.block, MEMMAP_CHUNK, P)
                else:
                    total = run_blocked(*args, dt == np.float32, self.block, MEMMAP_CHUNK)
        else:
            total = run(*args, np.zeros(net.k[1], dt), dt == np.float32)
        for t in range(T):  # write back where a contiguous copy was used
            if W[t] is not net.W[t]:
                net.W[t][...] = W[t]
            if has_bias and b[t] is not net.b[t]:
                net.b[t][...] = b[t]
        return float(total)

    def minibatch_ok(self, net, b) -> bool:
        """Whether ``run_minibatch_sgd`` runs this network with batches of b rows: float32, the
        fused kernels' activations and losses, and batches of at least ``FUSED_MIN_ELEMENTS``
        activations in the widest layer (smaller ones never pay numba's import and start-up)."""
        from . import numba_batch
        return (b > 1 and numba_batch.supports(net) and b * max(net.k[1:]) >= FUSED_MIN_ELEMENTS
                and numba_batch.usable())

    def run_minibatch_sgd(self, net, X, Y, rows, etas, lam, regularize_bias=True):
        """The book's SGD (SSBD 20.6) on the minibatches ``rows`` (m x b, b > 1), in place, as one
        compiled loop (``numba_batch``; float32); returns the sum of the losses at the iterates.
        Rows of a memory-mapped X are read ``MEMMAP_CHUNK`` examples at a time."""
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
                    np.arange(flat.size, dtype=np.int64).reshape(r.shape), etas[s:s + per], lam, regularize_bias)
            release_pages(X)
            return total
        return numba_batch.run_minibatch_sgd(net, _rows_source(X, dt), _rows_source(Y, dt), rows, etas, lam,
                                             regularize_bias)


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

_FUSED = None


def fused_kernels():
    """The fused kernels (a namespace of numba functions, rows split over the threads);
    imports numba and compiles (or loads from the cache) on the first call."""
    global _FUSED
    if _FUSED is None:
        _FUSED = _build_fused()
    return _FUSED


def _make_exp32(inline="never"):
    """exp for float32 as a numba function that LLVM can vectorize: Cody-Waite range reduction,
    Cephes' degree-5 polynomial, 2^n from the exponent bits (~1e-7 relative; x clamped to
    [-87, 88]: no inf, no denormals). Compiled with its own fastmath flags (no reassociation)."""
    import numba
    from llvmlite import ir
    from numba.core import types as nt
    from numba.extending import intrinsic

    @intrinsic
    def _f32_from_bits(typingctx, x):
        sig = nt.float32(nt.int32)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())
        return sig, codegen

    f32 = np.float32

    @numba.njit(inline=inline, fastmath={"contract", "arcp", "nsz"})
    def exp32(x):
        x = min(max(x, f32(-87.0)), f32(88.0))
        n = np.floor(x * f32(1.44269504088896341) + f32(0.5))
        r = x - n * f32(0.693359375)
        r = r - n * f32(-2.12194440e-4)
        p = f32(1.9875691500e-4)
        p = p * r + f32(1.3981999507e-3)
        p = p * r + f32(8.3334519073e-3)
        p = p * r + f32(4.1665795894e-2)
        p = p * r + f32(1.6666665459e-1)
        p = p * r + f32(5.0000001201e-1)
        p = p * (r * r) + r + f32(1.0)
        return p * _f32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    return exp32


def _build_fused():
    import types

    import numba
    from numba import prange

    f32 = np.float32
    # 'contract' lets LLVM use FMA in the polynomial; no reassociation (the Cody-Waite steps need
    # their order) and no finite-math assumptions (clamps and inf must behave).
    fm = {"contract", "arcp", "nsz"}
    inline = numba.njit(inline="always", fastmath=fm)
    exp32 = _make_exp32(inline="always")

    @inline
    def prime32(code, o, slope):
        if code == 1:
            return o * (f32(1.0) - o)
        if code == 3:
            return f32(1.0) if o > f32(0.0) else f32(0.0)
        if code == 4:
            return f32(1.0) if o > f32(0.0) else slope
        return f32(1.0)

    def bias_act(z, b, has_bias, code, slope):
        """z <- sigma(z + b) in place, row by row (one loop per activation: each vectorizes)."""
        n, k = z.shape
        for i in prange(n):
            zi = z[i]
            if has_bias:
                for j in range(k):
                    zi[j] += b[j]
            if code == 1:
                for j in range(k):
                    zi[j] = f32(1.0) / (f32(1.0) + exp32(-zi[j]))
            elif code == 3:
                for j in range(k):
                    zi[j] = max(zi[j], f32(0.0))
            elif code == 4:
                for j in range(k):
                    v = zi[j]
                    zi[j] = v if v > f32(0.0) else v * slope

    def times_prime(g, o, code, slope, gb, sum_rows):
        """g <- g * sigma'(a), sigma' from o = sigma(a); with ``sum_rows`` also gb = the column
        sums of the new g (row by row, in NumPy's order for ``np.sum(g, axis=0)``)."""
        n, k = g.shape
        for i in range(n):
            gi, oi = g[i], o[i]
            if code == 1:
                for j in range(k):
                    gi[j] = gi[j] * (oi[j] * (f32(1.0) - oi[j]))
            elif code == 3:
                for j in range(k):
                    gi[j] = gi[j] if oi[j] > f32(0.0) else f32(0.0)
            elif code == 4:
                for j in range(k):
                    gi[j] = gi[j] if oi[j] > f32(0.0) else gi[j] * slope
            if sum_rows:
                if i == 0:
                    for j in range(k):
                        gb[j] = gi[j]
                else:
                    for j in range(k):
                        gb[j] += gi[j]

    def squared_out(o, y, g, rows, code, slope):
        """g = (o - y) sigma'(a_T), rows[i] = 1/2 ||o_i - y_i||^2 (accumulated in float64)."""
        n, k = o.shape
        for i in prange(n):
            s = 0.0
            oi, yi, gi = o[i], y[i], g[i]
            for j in range(k):
                d = oi[j] - yi[j]
                s += np.float64(d) * np.float64(d)
                gi[j] = d * prime32(code, oi[j], slope)
            rows[i] = 0.5 * s

    def softmax_out(o, y, g, rows):
        """Softmax cross-entropy on the logits o: g = sum(y) softmax(o) - y,
        rows[i] = sum(y) logsumexp(o_i) - y_i . o_i (sums in float64)."""
        n, k = o.shape
        for i in prange(n):
            oi, yi, gi = o[i], y[i], g[i]
            m = oi[0]
            for j in range(1, k):
                m = max(m, oi[j])
            for j in range(k):
                gi[j] = exp32(oi[j] - m)
            s = 0.0
            sy = 0.0
            syo = 0.0
            for j in range(k):
                s += gi[j]
                sy += yi[j]
                syo += np.float64(yi[j]) * np.float64(oi[j])
            rows[i] = sy * (np.float64(m) + np.log(s)) - syo
            c = f32(sy / s)
            for j in range(k):
                gi[j] = gi[j] * c - yi[j]

    def update(w, v, eta, lam, total, off, masked):
        """The book's update with the same operations in the same order as ``book_update_``:
        w <- w - (v / total + w lam) eta; phantom entries (off) set to 0. v is not written."""
        n, k = w.shape
        for i in prange(n):
            wi, vi = w[i], v[i]
            if lam != 0:
                for j in range(k):
                    wi[j] = wi[j] - (vi[j] / total + wi[j] * lam) * eta
            else:
                for j in range(k):
                    wi[j] = wi[j] - (vi[j] / total) * eta
            if masked:
                oi = off[i]
                for j in range(k):
                    if oi[j]:
                        wi[j] = 0

    def renamed(fn, suffix):
        """fn under another qualified name: numba's on-disk cache is keyed by the name, so the
        one-thread and the parallel compilations of one function need names of their own."""
        f = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__,
                               fn.__closure__)
        f.__qualname__ = fn.__qualname__ + suffix
        return f

    ns = types.SimpleNamespace()
    for name, fn in (("bias_act", bias_act), ("times_prime", times_prime), ("squared_out", squared_out),
                     ("softmax_out", softmax_out), ("update", update)):
        # error_model="numpy": x / 0 gives inf/nan as in NumPy (the default Python model checks
        # every division for ZeroDivisionError, which keeps the loops from being vectorized)
        opts = dict(cache=True, nogil=True, error_model="numpy")
        if name != "update":
            opts["fastmath"] = fm
        setattr(ns, name + "_par", numba.njit(parallel=True, **opts)(renamed(fn, "_par")))
        setattr(ns, name, numba.njit(**opts)(renamed(fn, "_one")))
    # (the update is exact IEEE arithmetic, no fastmath: no FMA, so it equals NumPy's bitwise)
    return ns
