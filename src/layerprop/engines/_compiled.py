"""The compiled loops and kernels (numba), in one module imported on first use.

Everything here is defined at module level, so that numba's on-disk cache (``cache=True``)
finds the machine code again in the next process: a function defined inside another one is
keyed by the values it captures, and captured compiled functions pickle differently in every
process, so such closures were compiled again in every process (4-8 s).

- SciPy's BLAS ``sgemm``/``dgemm`` as ``gemm`` (registered with LLVM under names of their own and
  called by name, so the cached machine code finds them again);
- ``exp32``: a vectorizable float32 exp;
- the book's SGD with batch size 1: ``run`` (one pass per example), ``run_blocked`` and
  ``run_blocked_parallel`` (dense W_0, blocks of examples), used by ``numba_single.NumbaEngine``;
- the fused float32 element-wise kernels of the NumPy engine (``bias_act``, ``times_prime``,
  ``squared_out``, ``softmax_out``, ``book_update``; ``*_par``: rows over the threads);
- the minibatch loop ``run_minibatch`` (``numba_batch``).
"""

import types

import llvmlite.binding as ll
import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS, loaded before its functions are looked up)
from llvmlite import ir
from numba import prange
from numba.core import types as nt
from numba.extending import get_cython_function_address, intrinsic

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
jit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
# the steps of one example, inlined into the loop at numba's level: arrays passed across a
# call cost atomic reference-count updates per call
step = numba.njit(inline="always", fastmath=FASTMATH, error_model="numpy")
f32 = np.float32


# -- BLAS ----------------------------------------------------------------------------------------
def _external(name):
    """SciPy's BLAS ``name`` as an external function numba code can call (every argument by
    reference, as Fortran BLAS takes them), registered under a name of our own."""
    symbol = f"layerprop_scipy_{name}"
    ll.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", name))
    return nt.ExternalFunction(symbol, nt.void(*([nt.voidptr] * 13)))


_sgemm, _dgemm = _external("sgemm"), _external("dgemm")


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
        _sgemm(*args)
    else:
        _dgemm(*args)


# -- float32 exp ---------------------------------------------------------------------------------
@intrinsic
def _f32_from_bits(typingctx, x):
    sig = nt.float32(nt.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return sig, codegen


@numba.njit(inline="always", fastmath={"contract", "arcp", "nsz"})
def exp32(x):
    """exp for float32 that LLVM can vectorize: Cody-Waite range reduction, Cephes' degree-5
    polynomial, 2^n from the exponent bits (~1e-7 relative; x clamped to [-87, 88]: no inf, no
    denormals). Its own fastmath flags (no reassociation: the reduction needs its order); inlined,
    so that the loops that call it vectorize."""
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


# -- the book's SGD, batch size 1 ---------------------------------------------------------------
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
def block_end(W0, S, s1, N, every):
    """After a block ending at example s1, with W_0 = S V: writes W_0 = S V (and returns S = 1) at
    the end, every ``every`` examples and when S gets small (below 0.5); else returns S."""
    one = W0.dtype.type(1.0)
    if S < W0.dtype.type(0.5) or s1 == N or s1 % every == 0:
        if S != one:
            for i in range(W0.shape[0]):
                for j in range(W0.shape[1]):
                    W0[i, j] *= S
        return one
    return S


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
    S = one  # W_0 = S V
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
        S = block_end(W0, C, s0 + kb, N, every)
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
    S = one  # W_0 = S V
    kb = min(K, N)
    for p in prange(P):
        gather(X, rows, 0, p * kb // P, (p + 1) * kb // P, xbs[0])
    for j in range((N + K - 1) // K):
        s0 = j * K
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
        S = block_end(W0, C, s1, N, every)
    return total


# -- fused float32 element-wise kernels (the NumPy engine's minibatch passes) ----------------------
# 'contract' lets LLVM use FMA in the polynomial; no reassociation (the Cody-Waite steps need
# their order) and no finite-math assumptions (clamps and inf must behave).
_FUSED_FM = {"contract", "arcp", "nsz"}
inline = numba.njit(inline="always", fastmath=_FUSED_FM)


@inline
def prime32(code, o, slope):
    if code == 1:
        return o * (f32(1.0) - o)
    if code == 3:
        return f32(1.0) if o > f32(0.0) else f32(0.0)
    if code == 4:
        return f32(1.0) if o > f32(0.0) else slope
    return f32(1.0)


def _bias_act(z, b, has_bias, code, slope):
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


def _times_prime(g, o, code, slope, gb, sum_rows):
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


def _squared_out(o, y, g, rows, code, slope):
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


def _softmax_out(o, y, g, rows):
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


def _book_update(w, v, eta, lam, total, off, masked):
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


def _renamed(fn, suffix):
    """fn under another qualified name: numba's on-disk cache is keyed by the name, so the
    one-thread and the parallel compilations of one function need names of their own."""
    f = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    f.__qualname__ = fn.__qualname__ + suffix
    return f


def _compile(fn, parallel, fastmath=True):
    # error_model="numpy": x / 0 gives inf/nan as in NumPy (the default Python model checks
    # every division for ZeroDivisionError, which keeps the loops from being vectorized)
    opts = {"cache": True, "nogil": True, "error_model": "numpy", "parallel": parallel}
    if fastmath:
        opts["fastmath"] = _FUSED_FM
    return numba.njit(**opts)(_renamed(fn, "_par" if parallel else "_one"))


bias_act, bias_act_par = _compile(_bias_act, False), _compile(_bias_act, True)
times_prime, times_prime_par = _compile(_times_prime, False), _compile(_times_prime, True)
squared_out, squared_out_par = _compile(_squared_out, False), _compile(_squared_out, True)
softmax_out, softmax_out_par = _compile(_softmax_out, False), _compile(_softmax_out, True)
# (the update is exact IEEE arithmetic, no fastmath: no FMA, so it equals NumPy's bitwise)
book_update, book_update_par = _compile(_book_update, False, False), _compile(_book_update, True, False)


# -- the book's SGD with minibatches, float32 (numba_batch) ---------------------------------------
@jit
def column_sums(gn, r0, r1, s):
    """s[r] = sum over the rows i of gn[i, r], for r in r0 .. r1 - 1 (a bias's summed gradient)."""
    for r in range(r0, r1):
        s[r] = 0
    for i in range(gn.shape[0]):
        gi = gn[i]
        for r in range(r0, r1):
            s[r] += gi[r]
    return s


@jit
def bias_rows_update(bt, bo, s, gn, r0, r1, eta, lam_b):
    """The book's update of biases r0 .. r1 - 1 from the column sums s[r] of g_{t+1} (n rows):
    b[r] <- b[r] - (s[r] / n + lam_b b[r]) eta; phantom biases (bo) back to 0."""
    n = gn.shape[0]
    column_sums(gn, r0, r1, s)
    for r in range(r0, r1):
        bt[r] = bt[r] - (s[r] / n + lam_b * bt[r]) * eta
        if bo[r]:
            bt[r] = 0


@jit
def zero_phantoms(Wt, off_t, r0, r1, c0, c1):
    """W_t[r, j] <- 0 for the phantom edges (off_t) in rows r0:r1, columns c0:c1."""
    for r in range(r0, r1):
        for j in range(c0, c1):
            if off_t[r, j]:
                Wt[r, j] = 0


@jit
def first_forward(p, P, W0, b0, has_bias, act1, X, rows, XP, O1, chars, ints, scal, slope):
    """Small batches: thread p's neurons r0:r1 of layer 1 (its rows of W_0). The batch's rows of
    X go into the thread's own XP[p]; o_1[:, r0:r1] = sigma_1(X_b W_0[r0:r1]^T + b_0[r0:r1]). Each
    thread packs only its part of W_0 (split by examples, each would pack all of it)."""
    n = rows.shape[0]
    k1, k0 = W0.shape
    r0, r1 = p * k1 // P, (p + 1) * k1 // P
    xb = XP[p]
    for i in range(n):
        xi, xs = xb[i], X[rows[i]]
        for j in range(k0):
            xi[j] = xs[j]
    if r1 > r0:
        gemm(True, 1, 0, r1 - r0, n, k0, f32(1.0), W0[r0:], k0, xb, k0, f32(0.0), O1[0, r0:], k1,
             chars, ints[p], scal[p])
        bias_act(O1[:, r0:r1], b0[r0:r1] if has_bias else b0, has_bias, act1, slope)


@jit
def first_update(p, P, W0, b0, has_bias, dense0, off0, boff0, XP, G1, gb0, eta, lam, lam_b, chars, ints, scal):
    """Small batches: thread p's rows r0:r1 of W_0 (as first_forward's):
    W_0[r0:r1] <- (1 - eta lam) W_0[r0:r1] - (eta / n) g_1[:, r0:r1]^T X_b (one GEMM with beta, from
    the thread's own copy of X_b), b_0[r0:r1] the same with the column sums of g_1; phantom entries
    back to 0."""
    n = G1.shape[0]
    k1, k0 = W0.shape
    r0, r1 = p * k1 // P, (p + 1) * k1 // P
    if r1 == r0:
        return
    gemm(True, 0, 1, k0, r1 - r0, n, f32(-eta / n), XP[p], k0, G1[0, r0:], k1, f32(1.0) - eta * lam,
         W0[r0:], k0, chars, ints[p], scal[p])
    if not dense0:
        zero_phantoms(W0, off0, r0, r1, 0, k0)
    if has_bias:
        bias_rows_update(b0, boff0, gb0, G1, r0, r1, eta, lam_b)


@jit
def forward_backward(p, P, W, b, has_bias, acts, loss, X, Y, rows, O, G, Yb, lrows, chars, ints, scal, slope,
                     dummy, t0):
    """Thread p's share of the batch (rows lo:hi): gather, forward (from layer t0: 1 where
    first_forward computed o_1), g_T and loss, backward."""
    n = rows.shape[0]
    lo, hi = p * n // P, (p + 1) * n // P
    nh = hi - lo
    if nh == 0:
        return 0.0
    T = len(W)
    X0, Yh = O[0], Yb
    for i in range(lo, hi):
        xi, yi, r = X0[i], Yh[i], rows[i]
        xs, ys = X[r], Y[r]
        if t0 == 0:
            for j in range(xi.shape[0]):
                xi[j] = xs[j]
        for j in range(yi.shape[0]):
            yi[j] = ys[j]
    for t in range(t0, T):  # o_{t+1} = sigma(W_t o_t + b_t) on rows lo:hi
        k0, k1 = W[t].shape[1], W[t].shape[0]
        gemm(True, 1, 0, k1, nh, k0, f32(1.0), W[t], k0, O[t][lo:], k0, f32(0.0), O[t + 1][lo:], k1,
             chars, ints[p], scal[p])
        bias_act(O[t + 1][lo:hi], b[t], has_bias, acts[t + 1], slope)
    if loss == 0:
        squared_out(O[T][lo:hi], Yh[lo:hi], G[T][lo:hi], lrows[lo:hi], acts[T], slope)
    else:
        softmax_out(O[T][lo:hi], Yh[lo:hi], G[T][lo:hi], lrows[lo:hi])
    total = 0.0
    for i in range(lo, hi):
        total += lrows[i]
    for t in range(T - 1, 0, -1):  # g_t = (g_{t+1} W_t) sigma'(a_t), with W_t before its update
        k0, k1 = W[t].shape[1], W[t].shape[0]
        gemm(True, 0, 0, k0, nh, k1, f32(1.0), W[t], k0, G[t + 1][lo:], k1, f32(0.0), G[t][lo:], k0,
             chars, ints[p], scal[p])
        times_prime(G[t][lo:hi], O[t][lo:hi], acts[t], slope, dummy, False)
    return total


@jit
def minibatch_update(p, P, W, b, has_bias, dense, off, boff, O, G, gb, eta, lam, lam_b, chars, ints, scal):
    """Thread p's columns c of every W_t, t >= 1 (W_0: first_update): W_t[:, c] <- (1 - eta lam)
    W_t[:, c] - (eta / n) g_{t+1}^T o_t[:, c] (one GEMM with beta; a share of columns packs only its
    part of o_t); its rows r of b_t the same with the column sums of g_{t+1}; phantom entries back
    to 0."""
    n = G[1].shape[0]
    for t in range(1, len(W)):
        k0, k1 = W[t].shape[1], W[t].shape[0]
        c0, c1 = p * k0 // P, (p + 1) * k0 // P
        gn, Wt = G[t + 1], W[t]
        if c1 > c0:
            gemm(True, 0, 1, c1 - c0, k1, n, f32(-eta / n), O[t][0, c0:], k0, gn, k1, f32(1.0) - eta * lam,
                 Wt[0, c0:], k0, chars, ints[p], scal[p])
            if not dense[t]:
                zero_phantoms(Wt, off[t], 0, k1, c0, c1)
        r0, r1 = p * k1 // P, (p + 1) * k1 // P
        if has_bias and r1 > r0:
            bias_rows_update(b[t], boff[t], gb[t], gn, r0, r1, eta, lam_b)


@jit
def partial_gradients(p, P, O, G, Cp, bp, has_bias, chars, ints, scal):
    """Thread p's part of the summed weight gradients, from its own rows lo:hi of the batch:
    Cp[t][p] = g_{t+1}[lo:hi]^T o_t[lo:hi] and bp[t][p] = the column sums of g_{t+1}[lo:hi]
    (for large batches: each thread packs only its own, cache-warm rows)."""
    n = G[1].shape[0]
    lo, hi = p * n // P, (p + 1) * n // P
    for t in range(len(Cp)):
        C, k1, k0 = Cp[t][p], Cp[t].shape[1], Cp[t].shape[2]
        if hi > lo:
            gemm(True, 0, 1, k0, k1, hi - lo, f32(1.0), O[t][lo:], k0, G[t + 1][lo:], k1, f32(0.0), C, k0,
                 chars, ints[p], scal[p])
        else:
            C[:, :] = 0
        if has_bias:
            s = bp[t][p]
            s[:] = 0
            for i in range(lo, hi):
                gi = G[t + 1][i]
                for r in range(k1):
                    s[r] += gi[r]


@jit
def sum_parts(C, r, P):
    """C[0, r] <- sum_q C[q, r]: the threads' parts of row r of a summed gradient, added up."""
    g = C[0, r]
    for q in range(1, P):
        gq = C[q, r]
        for j in range(g.shape[0]):
            g[j] += gq[j]
    return g


@jit
def sum_bias_parts(B, r0, r1, P):
    """B[0, r] <- sum_q B[q, r] for r in r0 .. r1 - 1: the threads' parts of a summed bias gradient."""
    for q in range(1, P):
        for r in range(r0, r1):
            B[0, r] += B[q, r]
    return B[0]


@jit
def squares(g, off_row, masked):
    """sum of g[j]^2 over the real edges (float64): a part of ||v||^2."""
    s = 0.0
    for j in range(g.shape[0]):
        if not (masked and off_row[j]):
            v = np.float64(g[j])
            s += v * v
    return s


@jit
def reduce_update(p, P, W, b, has_bias, dense, off, boff, Cp, bp, n, eta, lam, lam_b, want_norm):
    """Thread p's rows of every W_t: W_t <- (1 - eta lam) W_t - (eta / n) sum_q Cp[t][q] (the
    threads' parts of the summed gradient added here), b_t the same; phantom entries back to 0.
    Returns this thread's part of ||sum_q Cp||^2 over the real edges if ``want_norm``, else 0."""
    sq = 0.0
    for t in range(len(W)):
        Wt, C = W[t], Cp[t]
        k1, k0 = Wt.shape
        r0, r1 = p * k1 // P, (p + 1) * k1 // P
        keep, step_ = f32(1.0) - eta * lam, eta / n
        for r in range(r0, r1):
            wr, g = Wt[r], sum_parts(C, r, P)  # thread 0's part takes the sum (rows r are this thread's)
            if want_norm:
                sq += squares(g, off[t][r], not dense[t])
            for j in range(k0):
                wr[j] = wr[j] * keep - step_ * g[j]
            if not dense[t]:
                ot = off[t][r]
                for j in range(k0):
                    if ot[j]:
                        wr[j] = 0
        if has_bias:
            bt, bo, g = b[t], boff[t], sum_bias_parts(bp[t], r0, r1, P)
            if want_norm and r1 > r0:
                sq += squares(g[r0:r1], bo[r0:r1], True)
            for r in range(r0, r1):
                bt[r] = bt[r] - (g[r] / n + lam_b * bt[r]) * eta
                if bo[r]:
                    bt[r] = 0
    return sq


@jit
def rule_update(w, g, n, eta, lam, off_row, masked, code, hyp, rate, s1, s2):
    """One row of weights w (and its optimizer state s1, s2) from the summed gradient g over n
    rows, as ``optim.py``: d = g / n + lam w; momentum (code 1) u = mu u - eta d, w += u;
    nesterov (2) the same with w += mu u - eta d; adam (3) m = b1 m + (1 - b1) d,
    s = b2 s + (1 - b2) d^2, w -= rate m / (sqrt(s) + eps). Phantom entries (off_row) stay 0."""
    # the constants as optim.py's NumPy arithmetic rounds them (Python floats cast to float32)
    mu, b1, b2, eps, c1, c2 = f32(hyp[0]), f32(hyp[1]), f32(hyp[2]), f32(hyp[3]), f32(1.0 - hyp[1]), f32(1.0 - hyp[2])
    for j in range(w.shape[0]):
        if masked and off_row[j]:
            w[j] = 0
            s1[j] = 0
            if code == 3:
                s2[j] = 0
            continue
        d = g[j] / n + lam * w[j]
        if code == 3:
            m = b1 * s1[j] + c1 * d
            v = b2 * s2[j] + c2 * (d * d)
            s1[j] = m
            s2[j] = v
            w[j] = w[j] + (-rate * m / (np.sqrt(v) + eps))
        else:
            u = mu * s1[j] - eta * d
            s1[j] = u
            w[j] = w[j] + (u if code == 1 else mu * u - eta * d)


@jit
def optimizer_update(p, P, W, b, has_bias, off, boff, Cp, bp, n, eta, lam, lam_b, code, hyp, rate, S1W, S2W, S1b,
                     S2b, want_norm):
    """Thread p's rows of every W_t and b_t by the update rule ``code`` (``rule_update``) from the
    threads' parts of the summed gradient; returns this thread's part of its squared norm if
    ``want_norm`` (as reduce_update)."""
    sq = 0.0
    for t in range(len(W)):
        Wt = W[t]
        k1 = Wt.shape[0]
        r0, r1 = p * k1 // P, (p + 1) * k1 // P
        for r in range(r0, r1):
            g = sum_parts(Cp[t], r, P)
            if want_norm:
                sq += squares(g, off[t][r], True)
            rule_update(Wt[r], g, n, eta, lam, off[t][r], True, code, hyp, rate, S1W[t][r], S2W[t][r])
        if has_bias and r1 > r0:
            g = sum_bias_parts(bp[t], r0, r1, P)
            if want_norm:
                sq += squares(g[r0:r1], boff[t][r0:r1], True)
            rule_update(b[t][r0:r1], g[r0:r1], n, eta, lam_b, boff[t][r0:r1], True, code, hyp, rate,
                        S1b[t][r0:r1], S2b[t][r0:r1])
    return sq


@jit
def small_batch_rule_update(p, P, W, b, has_bias, off, boff, O, G, XP, Cp, gb, n, eta, lam, lam_b, code, hyp, rate,
                            S1W, S2W, S1b, S2b, want_norm, chars, ints, scal):
    """Small batches with an update rule (``rule_update``): thread p's columns c of every W_t,
    t >= 1, and its rows of W_0 (as first_forward's): their summed gradient by one GEMM into
    Cp[t][0] (g_{t+1}^T o_t, from the thread's copy of X_b for W_0), then the rule, row by row; the
    biases of its rows the same from the column sums of g_{t+1}. Returns this thread's part of
    the squared gradient norm if ``want_norm``."""
    sq = 0.0
    for t in range(len(W)):
        Wt, Gt = W[t], Cp[t][0]
        k1, k0 = Wt.shape
        r0, r1 = p * k1 // P, (p + 1) * k1 // P
        if t == 0:  # rows r0:r1: G_0[r0:r1] = g_1[:, r0:r1]^T X_b
            c0, c1, rr0, rr1 = 0, k0, r0, r1
            if r1 > r0:
                gemm(True, 0, 1, k0, r1 - r0, n, f32(1.0), XP[p], k0, G[1][0, r0:], k1, f32(0.0), Gt[r0:], k0,
                     chars, ints[p], scal[p])
        else:  # columns c0:c1: G_t[:, c0:c1] = g_{t+1}^T o_t[:, c0:c1]
            c0, c1, rr0, rr1 = p * k0 // P, (p + 1) * k0 // P, 0, k1
            if c1 > c0:
                gemm(True, 0, 1, c1 - c0, k1, n, f32(1.0), O[t][0, c0:], k0, G[t + 1], k1, f32(0.0), Gt[0, c0:], k0,
                     chars, ints[p], scal[p])
        if c1 > c0:
            for r in range(rr0, rr1):
                g = Gt[r, c0:c1]
                if want_norm:
                    sq += squares(g, off[t][r, c0:c1], True)
                rule_update(Wt[r, c0:c1], g, n, eta, lam, off[t][r, c0:c1], True, code, hyp, rate,
                            S1W[t][r, c0:c1], S2W[t][r, c0:c1])
        if has_bias and r1 > r0:
            s = column_sums(G[t + 1], r0, r1, gb[t])
            if want_norm:
                sq += squares(s[r0:r1], boff[t][r0:r1], True)
            rule_update(b[t][r0:r1], s[r0:r1], n, eta, lam_b, boff[t][r0:r1], True, code, hyp, rate,
                        S1b[t][r0:r1], S2b[t][r0:r1])
    return sq


@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def run_minibatch(W, b, has_bias, dense, off, boff, acts, loss, X, Y, rows, etas, lam, lam_b, O, G, gb, Yb, lrows,
                  chars, ints, scal, slope, P, split, Cp, bp, code, hyp, t0, S1W, S2W, S1b, S2b, XP, sq):
    """len(rows) iterations of minibatch SGD, in place; returns the sum of the losses. ``code``
    0: the book's update; 1-3: momentum, nesterov, adam (``optimizer_update``; state S1, S2;
    ``t0`` Adam's steps so far). ``split``: each thread sums its own rows' weight gradient
    (Cp, bp) in the first region and the second adds the parts into the update; else (small
    batches) layer 1's neurons are shared out first (``first_forward``, with each thread's copy of
    the batch in XP), then the examples, and the second region's GEMMs write the book's update
    (or, for a rule, the summed gradient into Cp[t][0], shared by columns and rows as the book's
    update is). sq[p] receives thread p's part of the last iteration's squared gradient norm
    ||sum of the batch's gradients||^2 (the history's ||v||) where the loop has that sum: with
    ``split`` or a rule."""
    total = 0.0
    part = np.zeros(P)
    n = rows.shape[1]
    first = 0 if split else 1  # the layer forward_backward starts at
    for it in range(rows.shape[0]):
        r = rows[it]
        if not split:
            for p in prange(P):
                first_forward(p, P, W[0], b[0], has_bias, acts[1], X, r, XP, O[1], chars, ints, scal, slope)
        for p in prange(P):
            part[p] = forward_backward(p, P, W, b, has_bias, acts, loss, X, Y, r, O, G, Yb, lrows,
                                       chars, ints, scal, slope, gb[0], first)
            if split:
                partial_gradients(p, P, O, G, Cp, bp, has_bias, chars, ints, scal)
        for p in range(P):
            total += part[p]
        eta = etas[it]
        k = t0 + it + 1  # Adam's bias correction, as optim.Adam (its t counts the steps)
        rate = f32(eta * np.sqrt(1.0 - hyp[2] ** k) / (1.0 - hyp[1] ** k)) if code == 3 else f32(0.0)
        last = it == rows.shape[0] - 1
        for p in prange(P):
            if code > 0 and split:
                sq[p] = optimizer_update(p, P, W, b, has_bias, off, boff, Cp, bp, n, eta, lam, lam_b, code, hyp,
                                         rate, S1W, S2W, S1b, S2b, last)
            elif code > 0:  # Cp[t][0]: the whole summed gradient of W_t, each thread writing its share
                sq[p] = small_batch_rule_update(p, P, W, b, has_bias, off, boff, O, G, XP, Cp, gb, n, eta, lam,
                                                lam_b, code, hyp, rate, S1W, S2W, S1b, S2b, last, chars, ints, scal)
            elif split:
                sq[p] = reduce_update(p, P, W, b, has_bias, dense, off, boff, Cp, bp, n, eta, lam, lam_b, last)
            else:
                minibatch_update(p, P, W, b, has_bias, dense, off, boff, O, G, gb, eta, lam, lam_b, chars,
                                 ints, scal)
                first_update(p, P, W[0], b[0], has_bias, dense[0], off[0], boff[0], XP, G[1], gb[0], eta, lam,
                             lam_b, chars, ints, scal)
    return total
