"""The in-place NumPy engine: the reference's gradient sums with preallocated buffers.

Same math as ``backprop.py`` (SSBD 20.6), reorganized for speed on NumPy float32/float64:

- every array of a step lives in buffers allocated once per batch size (``np.matmul(..., out=)``);
- ``o[t]`` is computed in place over ``a[t]``; sigma'(a_t) is taken from o_t where the activation
  allows it (sigmoid: o(1-o), tanh: 1-o^2, relu/leaky relu: o > 0), so ``a[t]`` is kept only for
  softplus layers and for a binary cross-entropy output;
- the folded ``g[t] = delta[t] * sigma'(a[t])`` is computed in the same buffer as ``delta[t]``;
- sample weights r scale g_T once (everything after it is linear in g_T);
- dense layers skip the mask; the first layer skips delta_0 (no gradient w.r.t. the input);
- float32 with numba installed: the element-wise passes (bias add + activation, sigma' from o,
  the output delta and loss, the book's update) run as fused kernels with the rows split over the
  cores (``numba_single.fused_kernels``); without numba (or ``fused=False``) the same math in NumPy.
"""

from __future__ import annotations

import importlib.util

import numpy as np

# sigma, and sigma' written from the output o = sigma(a) (None: needs a).
_FROM_O = {"sigmoid", "tanh", "relu", "leaky_relu", "identity"}
SUPPORTED_ACTIVATIONS = frozenset(_FROM_O | {"softplus"})
SUPPORTED_LOSSES = frozenset({"squared", "softmax_cross_entropy", "binary_cross_entropy"})
LEAKY_SLOPE = 0.01
# activations the fused float32 kernels compute from o (numba_single.FUSED_ACTS)
_FUSED_CODES = {"identity": 0, "sigmoid": 1, "relu": 3, "leaky_relu": 4}
FUSED_UPDATE_MIN = 4096  # weights: smaller arrays are updated by NumPy (a kernel launch costs more)
FUSED_MIN_ELEMENTS = 8192  # batch rows x widest layer below which fused="auto" stays on NumPy
_HAS_NUMBA = None


def fused_available() -> bool:
    """True when numba is installed (the fused float32 kernels can be used)."""
    global _HAS_NUMBA
    if _HAS_NUMBA is None:
        _HAS_NUMBA = importlib.util.find_spec("numba") is not None
    return _HAS_NUMBA


def _fused():
    from .numba_single import fused_kernels
    return fused_kernels()


def supports(net) -> bool:
    """True when this engine computes this network: NumPy float32/float64 weights, known activations."""
    return (isinstance(net.W[0], np.ndarray) and net.W[0].dtype in (np.float32, np.float64)
            and all(f.name in SUPPORTED_ACTIVATIONS for f in net.act[1:])
            and net.loss.name in SUPPORTED_LOSSES)


def sigmoid_(z):
    """sigma(z) = 1 / (1 + exp(-z)) in place (exp may overflow to inf: the result is then 0)."""
    with np.errstate(over="ignore"):
        np.negative(z, out=z)
        np.exp(z, out=z)
    z += 1
    np.reciprocal(z, out=z)
    return z


def activate_(name, z):
    """o = sigma(a) in place over the buffer z that holds a."""
    if name == "sigmoid":
        return sigmoid_(z)
    if name == "tanh":
        return np.tanh(z, out=z)
    if name == "relu":
        return np.maximum(z, 0, out=z)
    if name == "leaky_relu":
        return np.multiply(z, np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype), out=z)
    if name == "softplus":  # max(a, 0) + log1p(exp(-|a|)), as the reference
        e = np.exp(-np.abs(z))
        np.log1p(e, out=e)
        np.maximum(z, 0, out=z)
        z += e
        return z
    return z  # identity


def times_sigma_prime_(name, g, o, a, tmp):
    """g *= sigma'(a), from o = sigma(a) where possible (tmp: a scratch buffer of g's shape)."""
    if name == "sigmoid":  # sigma' = o (1 - o)
        g *= o
        np.subtract(1, o, out=tmp)
        g *= tmp
    elif name == "tanh":  # 1 - o^2
        np.multiply(o, o, out=tmp)
        np.subtract(1, tmp, out=tmp)
        g *= tmp
    elif name == "relu":  # 1 where a > 0, i.e. where o > 0
        np.multiply(g, o > 0, out=g)
    elif name == "leaky_relu":
        g *= np.where(o > 0, 1.0, LEAKY_SLOPE).astype(g.dtype)
    elif name == "softplus":  # sigma' = sigmoid(a)
        np.copyto(tmp, a)
        g *= sigmoid_(tmp)
    return g


class _Buffers:
    """Every array one step needs, for one (network shape, batch size, dtype)."""

    def __init__(self, net, n):
        k, T, dt = net.k, net.T, net.W[0].dtype
        names = [None] + [f.name for f in net.act[1:]]
        self.o = [None] + [np.empty((n, k[t]), dt) for t in range(1, T + 1)]
        keep_a = [t > 0 and (names[t] == "softplus" or (t == T and net.loss.name == "binary_cross_entropy"))
                  for t in range(T + 1)]
        self.a = [np.empty((n, k[t]), dt) if keep_a[t] else None for t in range(T + 1)]
        self.g = [None] + [np.empty((n, k[t]), dt) for t in range(1, T + 1)]
        self.tmp = [None] + [np.empty((n, k[t]), dt) for t in range(1, T + 1)]
        self.gW = [np.empty(w.shape, dt) for w in net.W]
        self.gb = [None if v is None else np.empty(v.shape, dt) for v in net.b]
        self.rows = np.empty(n, dt)


class NumpyEngine:
    """Gradient sums (SSBD 20.6) on NumPy float32/float64 with preallocated buffers, in place."""

    name = "numpy"

    def __init__(self, fused="auto"):
        """``fused``: "auto" (the fused numba kernels for float32 batches of at least
        ``FUSED_MIN_ELEMENTS`` activations in the widest layer, when numba is installed), True
        (always for float32; needs numba) or False (NumPy only)."""
        if fused not in ("auto", True, False):
            raise ValueError(f"fused must be 'auto', True or False; got {fused!r}")
        if fused is True and not fused_available():
            raise ValueError("fused=True needs numba (pip install 'layerprop[fast]')")
        self.fused = fused_available() if fused == "auto" else fused
        self._force = fused is True
        self._buffers = {}
        self._masks = {}
        self._slope32 = np.float32(LEAKY_SLOPE)
        self._dummy32 = np.zeros(1, np.float32)

    def _kernels(self, net, n):
        """The fused kernels when they apply (float32; with ``fused="auto"`` only for batches of at
        least ``FUSED_MIN_ELEMENTS`` activations in the widest layer, so that small networks never
        pay numba's import, ~0.8 s), else None."""
        if not self.fused or net.W[0].dtype != np.float32:
            return None
        if not self._force and n * max(net.k[1:]) < FUSED_MIN_ELEMENTS:
            return None
        return _fused()

    def _buf(self, net, n):
        key = (tuple(net.k), n, net.W[0].dtype.str, tuple(f.name for f in net.act[1:]), net.loss.name,
               net.b[0] is None)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 8:  # a few batch sizes (the last batch of an epoch is smaller)
                self._buffers.clear()
            buf = self._buffers[key] = _Buffers(net, n)
        return buf

    def _phantoms(self, net):
        """Per layer, the positions of the phantom edges (None where the layer is dense)."""
        key = id(net.masks)
        hit = self._masks.get(key)
        if hit is None or hit[0] is not net.masks:
            def off(m):
                m = np.asarray(m)
                return None if m.all() else np.logical_not(m)
            bms = net.bias_masks or [None] * net.T
            hit = (net.masks, [off(m) for m in net.masks], [None if m is None else off(m) for m in bms])
            self._masks = {key: hit}
        return hit[1], hit[2]

    def forward(self, net, X, buf):
        """Forward pass (SSBD 20.6) into the buffers: o[t] = sigma_t(W_{t-1} o_{t-1} + b_{t-1})."""
        o = [X] + buf.o[1:]
        K = self._kernels(net, X.shape[0])
        for t in range(net.T):
            z = o[t + 1]
            np.matmul(o[t], net.W[t].T, out=z)
            code = _FUSED_CODES.get(net.act[t + 1].name)
            if K is not None and code is not None and buf.a[t + 1] is None:  # one pass: sigma(z + b)
                has_b = net.b[t] is not None
                K.bias_act(z, net.b[t] if has_b else z[0], has_b, code, self._slope32)
                continue
            if net.b[t] is not None:
                z += net.b[t]
            if buf.a[t + 1] is not None:
                np.copyto(buf.a[t + 1], z)
            activate_(net.act[t + 1].name, z)
        return o

    def output_g(self, net, o_T, a_T, Y, r, buf):
        """g_T = delta_T * sigma'(a_T) into buf.g[T] (scaled by r), and the loss on each row."""
        T, name = net.T, net.loss.name
        g, rows, tmp = buf.g[T], buf.rows[: o_T.shape[0]], buf.tmp[T]
        K = self._kernels(net, o_T.shape[0])
        code = _FUSED_CODES.get(net.act[T].name)
        if K is not None and name == "squared" and code is not None and a_T is None:
            K.squared_out(o_T, Y, g, rows, code, self._slope32)
        elif K is not None and name == "softmax_cross_entropy":
            K.softmax_out(o_T, Y, g, rows)
        elif name == "squared":
            np.subtract(o_T, Y, out=g)
            np.einsum("ij,ij->i", g, g, out=rows)
            rows *= 0.5
            times_sigma_prime_(net.act[T].name, g, o_T, a_T, tmp)
        elif name == "softmax_cross_entropy":  # identity output: o_T are the logits
            m = o_T.max(axis=1, keepdims=True)
            np.subtract(o_T, m, out=g)
            np.exp(g, out=g)
            s = g.sum(axis=1, keepdims=True)
            sy = Y.sum(axis=1, keepdims=True)
            # loss: sum(y) * logsumexp(o) - sum(y * o)
            np.multiply(Y, o_T, out=tmp)
            np.multiply(sy[:, 0], m[:, 0] + np.log(s[:, 0]), out=rows)
            rows -= tmp.sum(axis=1)
            g *= sy / s
            g -= Y
        else:  # binary cross-entropy, sigmoid output: g_T = sigma(a_T) - y, loss softplus(a) - y a
            np.subtract(o_T, Y, out=g)
            e = np.exp(-np.abs(a_T))
            np.log1p(e, out=e)
            e += np.maximum(a_T, 0)
            np.multiply(Y, a_T, out=tmp)
            e -= tmp
            np.sum(e, axis=1, out=rows)
        if r is not None:
            g *= r[:, None]
            return float(rows @ r), float(r.sum())
        return float(rows.sum()), float(o_T.shape[0])

    def gradient_sums(self, net, X, Y, r=None):
        """Forward, backward and the summed, masked gradient (SSBD 20.6) on one batch."""
        n, T = X.shape[0], net.T
        buf = self._buf(net, n)
        offW, offb = self._phantoms(net)
        o = self.forward(net, X, buf)
        K = self._kernels(net, n)
        loss_sum, weight_sum = self.output_g(net, o[T], buf.a[T], Y, r, buf)
        g = buf.g
        summed = False  # gb[t] already summed by the fused kernel that made g[t + 1]
        for t in range(T - 1, -1, -1):
            np.matmul(g[t + 1].T, o[t], out=buf.gW[t])
            if offW[t] is not None:
                np.copyto(buf.gW[t], 0, where=offW[t])
            if buf.gb[t] is not None:
                if not summed:
                    np.sum(g[t + 1], axis=0, out=buf.gb[t])
                if offb[t] is not None:
                    np.copyto(buf.gb[t], 0, where=offb[t])
            summed = False
            if t > 0:  # delta_t = g_{t+1} W_t; g_t = delta_t * sigma'(a_t) (none for the input layer)
                np.matmul(g[t + 1], net.W[t], out=g[t])
                code = _FUSED_CODES.get(net.act[t].name)
                if K is not None and code is not None and buf.a[t] is None:
                    gb = buf.gb[t - 1]
                    summed = gb is not None and n > 0
                    K.times_prime(g[t], o[t], code, self._slope32, gb if summed else self._dummy32, summed)
                else:
                    times_sigma_prime_(net.act[t].name, g[t], o[t], buf.a[t], buf.tmp[t])
        return loss_sum, weight_sum, buf.gW, buf.gb

    def predict(self, net, X):
        """o_T for the rows of X (a new array)."""
        buf = self._buf(net, X.shape[0])
        return self.forward(net, X, buf)[-1].copy()

    def run_book_sgd(self, net, X, Y, rows, etas, lam, regularize_bias=True):
        """The book's SGD (SSBD 20.6) with batch size 1, in place: for each i, v_i = Backpropagation
        on row ``rows[i]`` and w <- w - eta_i (v_i + lam w); returns the sum of the losses at w^(i)."""
        offW, offb = self._phantoms(net)
        lam_b = lam if regularize_bias else 0.0
        total = 0.0
        for r_i, eta in zip(np.asarray(rows).tolist(), np.asarray(etas, dtype=float).tolist()):
            loss, _, gW, gb = self.gradient_sums(net, X[r_i:r_i + 1], Y[r_i:r_i + 1], None)
            total += loss
            for t in range(net.T):
                book_update_(net.W[t], gW[t], eta, lam, offW[t])
                if net.b[t] is not None:
                    book_update_(net.b[t], gb[t], eta, lam_b, offb[t])
        return total


_NO_MASK = np.zeros((1, 1), np.bool_)


def book_update_(w, v, eta, lam, off=None, total=None, tmp=None, fused=None):
    """w <- w - eta (v / total + lam w) in place (SSBD 20.6; ``total`` the weight sum that makes the
    summed gradient a mean), the same operations in the same order as the expression (so the same
    numbers) without allocating when ``tmp`` (w's shape) is given; phantom entries (``off``) stay
    exactly 0. Overwrites v (except on the fused path, which leaves it as it was).

    A float32 C-contiguous 2-D ``w`` of at least ``FUSED_UPDATE_MIN`` entries is updated by a
    fused numba kernel when numba is installed (``fused=None``; ``fused=False``: NumPy): one pass,
    rows split over the cores, the same IEEE operations in the same order, so the same bits."""
    if (fused is not False and w.dtype == np.float32 and w.ndim == 2 and w.size >= FUSED_UPDATE_MIN
            and w.flags.c_contiguous and v.shape == w.shape and v.dtype == w.dtype
            and (off is None or off.shape == w.shape) and fused_available()):
        f = np.float32
        _fused().update(w, v, f(eta), f(lam), f(1.0 if total is None else total),
                        _NO_MASK if off is None else off, off is not None)
        return w
    if total is not None:
        np.divide(v, total, out=v)
    if lam:
        v += np.multiply(w, lam, out=tmp) if tmp is not None else lam * w
    v *= eta
    w -= v
    if off is not None:
        np.copyto(w, 0, where=off)
    return w
