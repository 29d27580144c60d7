"""Update rules: the book's SGD step and the optimizers users expect, all masked by E.

The book (SSBD 20.6): w^(i+1) = w^(i) - eta_i (v_i + lam w^(i)). ``"momentum"``, ``"nesterov"``
and ``"adam"`` follow scikit-learn's ``SGDOptimizer`` / ``AdamOptimizer`` with the book's
lam w term added to the gradient. Every rule keeps phantom entries (edges not in E) exactly 0.0:
the gradient, the lam w term, the optimizer state and the new weights are all masked.

Arrays live in the network's array namespace. For NumPy weights the update is done in place
(same operations in the same order, hence bitwise the same numbers as the expression).
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_real
from ._xp import array_device, array_namespace, is_numpy_array, to_numpy


class Optimizer:
    """Base class: holds lam, whether biases are regularized, and masked per-array state.

    ``step(net, gW, gb, eta)`` updates ``net``'s weights from the mean gradient (gW, gb).
    """

    name = "base"
    _state_names: tuple = ()

    def __init__(self, net, *, lam=0.0, regularize_bias=True):
        self.lam = check_real(lam, "l2 (lambda)", low=0)
        self.regularize_bias = bool(regularize_bias)
        self.lam_b = self.lam if self.regularize_bias else 0.0
        self.xp = array_namespace(net.W[0])
        self.numpy = is_numpy_array(net.W[0])
        self.masks = list(net.masks)
        self.bias_masks = [None] * len(net.W) if net.bias_masks is None else list(net.bias_masks)
        # phantom positions for the in-place NumPy path (None where every edge is in E)
        off = lambda m: None if m is None or bool(np.all(m)) else np.logical_not(m)
        self._off = [off(m) for m in self.masks] if self.numpy else None
        self._off_b = [off(m) for m in self.bias_masks] if self.numpy else None
        self.state = {n: self._zeros_like(net) for n in self._state_names}
        self.t = 0  # steps done (Adam's bias correction)

    def _zeros_like(self, net):
        xp = self.xp
        return ([xp.zeros_like(w) for w in net.W], [None if v is None else xp.zeros_like(v) for v in net.b])

    def _mask(self, x, m, off):
        """Entries off the edge set set to exactly 0.0 (in place for NumPy)."""
        if m is None:
            return x
        if self.numpy:
            if off is not None:
                x[off] = 0.0
            return x
        return self.xp.where(m, x, self.xp.zeros((), dtype=x.dtype))

    def _add(self, w, u, m, off):
        """w + u with phantom entries exactly 0.0 (in place for NumPy)."""
        if self.numpy:
            w += u
            return self._mask(w, m, off)
        return self._mask(w + u, m, off)

    def _direction(self, g, w, lam, m, off):
        """d = v_i + lam w, masked (a new array: the gradient g is left as it is)."""
        return self._mask(g + lam * w if lam else g + 0.0, m, off)

    def _arrays(self, net, gW, gb):
        """(W, gradient, lam, mask, phantom positions, state slot) for every weight array."""
        out = []
        for t in range(len(net.W)):
            offW = self._off[t] if self.numpy else None
            out.append(("W", t, net.W[t], gW[t], self.lam, self.masks[t], offW))
            if net.b[t] is not None:
                offb = self._off_b[t] if self.numpy else None
                out.append(("b", t, net.b[t], gb[t], self.lam_b, self.bias_masks[t], offb))
        return out

    def step(self, net, gW, gb, eta) -> None:
        """One update of every weight of ``net`` from the mean gradient (gW, gb) and step size eta_i."""
        self.t += 1
        newW, newb = list(net.W), list(net.b)
        for kind, t, w, g, lam, m, off in self._arrays(net, gW, gb):
            w = self._update(kind, t, w, g, lam, eta, m, off)
            (newW if kind == "W" else newb)[t] = w
        if not self.numpy:
            net.replace_params(newW, newb)

    def _slot(self, name, kind, t):
        return self.state[name][0 if kind == "W" else 1][t]

    def _set_slot(self, name, kind, t, value):
        self.state[name][0 if kind == "W" else 1][t] = value

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer state as NumPy arrays (for checkpoints): ``{name}.W.{t}``, ``{name}.b.{t}``, ``t``."""
        d = {"t": np.array(self.t, dtype=np.int64)}
        for name, (Ws, bs) in self.state.items():
            for t, w in enumerate(Ws):
                d[f"{name}.W.{t}"] = np.array(to_numpy(w), copy=True)
            for t, v in enumerate(bs):
                if v is not None:
                    d[f"{name}.b.{t}"] = np.array(to_numpy(v), copy=True)
        return d

    def load_state_dict(self, d) -> None:
        """Restore the state saved by :meth:`state_dict` (exact: same numbers, same dtype)."""
        want = set(self.state_dict())
        if set(d) != want:
            raise ValueError(f"optimizer state for {self.name!r} must have keys {sorted(want)}; got {sorted(d)}")
        self.t = int(np.asarray(d["t"]))
        for name, (Ws, bs) in self.state.items():
            for arrs, kind in ((Ws, "W"), (bs, "b")):
                for t, old in enumerate(arrs):
                    if old is None:
                        continue
                    new = np.asarray(d[f"{name}.{kind}.{t}"])
                    if new.shape != tuple(old.shape):
                        raise ValueError(f"optimizer state {name}.{kind}.{t} must have shape "
                                         f"{tuple(old.shape)}; got {new.shape}")
                    arrs[t] = (new.astype(old.dtype, copy=True) if self.numpy else
                               self.xp.asarray(new, dtype=old.dtype, device=array_device(old)))


class BookSGD(Optimizer):
    """The book's update (SSBD 20.6): w <- w - eta_i (v_i + lam w)."""

    name = "sgd"

    def _tmp(self, kind, t, w):
        """A scratch array of w's shape for the in-place NumPy update (allocated once)."""
        bufs = self.__dict__.setdefault("_tmps", {})
        tmp = bufs.get((kind, t))
        if tmp is None or tmp.shape != w.shape or tmp.dtype != w.dtype:
            tmp = bufs[(kind, t)] = np.empty_like(w)
        return tmp

    def _update(self, kind, t, w, g, lam, eta, m, off):
        if self.numpy:  # in place: the same operations as the expression below, in the same order
            u = self._tmp(kind, t, w)  # (g is left as it is)
            if lam:
                np.multiply(w, lam, out=u)
                u += g
            else:
                np.copyto(u, g)
            u *= eta
            w -= u
            return self._mask(w, m, off)
        return self._mask(w - eta * (g + lam * w) if lam else w - eta * g, m, off)

    def step_sums(self, net, gW, gb, eta, total) -> None:
        """:meth:`step` from the gradient *sums* over a batch of total weight ``total`` (> 0), for
        NumPy weights: w <- w - eta (v / total + lam w) in one in-place pass per array, without
        allocating (``book_update_``; the fused kernel for large float32 arrays) and with the same
        numbers as ``step(net, *combine(...)[1:], eta)``. Overwrites gW and gb."""
        from .engines.numpy_fast import book_update_
        self.t += 1
        for kind, t, w, g, lam, m, off in self._arrays(net, gW, gb):
            book_update_(w, g, eta, lam, off if m is not None else None, total, self._tmp(kind, t, w))


class Momentum(Optimizer):
    """Heavy-ball momentum (scikit-learn's SGDOptimizer): u = mu u - eta_i (v_i + lam w); w += u."""

    name = "momentum"
    _state_names = ("velocity",)

    def __init__(self, net, *, momentum=0.9, **kw):
        super().__init__(net, **kw)
        self.mu = check_real(momentum, "momentum", 0, 1, high_open=True)

    def _update(self, kind, t, w, g, lam, eta, m, off):
        d = self._direction(g, w, lam, m, off)
        u = self._mask(self.mu * self._slot("velocity", kind, t) - eta * d, m, off)
        self._set_slot("velocity", kind, t, u)
        return self._apply(w, u, d, eta, m, off)

    def _apply(self, w, u, d, eta, m, off):
        return self._add(w, u, m, off)


class Nesterov(Momentum):
    """Nesterov momentum as scikit-learn: u = mu u - eta_i d; w += mu u - eta_i d (d = v_i + lam w)."""

    name = "nesterov"

    def _apply(self, w, u, d, eta, m, off):
        return self._add(w, self.mu * u - eta * d, m, off)


class Adam(Optimizer):
    """Adam as scikit-learn's AdamOptimizer, with d = v_i + lam w as the gradient:
    m = b1 m + (1-b1) d; s = b2 s + (1-b2) d^2; w -= eta_i sqrt(1-b2^t)/(1-b1^t) m / (sqrt(s) + eps)."""

    name = "adam"
    _state_names = ("m", "s")

    def __init__(self, net, *, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kw):
        super().__init__(net, **kw)
        self.beta_1 = check_real(beta_1, "beta_1", 0, 1, high_open=True)
        self.beta_2 = check_real(beta_2, "beta_2", 0, 1, high_open=True)
        self.epsilon = check_real(epsilon, "epsilon", low=0, low_open=True)

    def _update(self, kind, t, w, g, lam, eta, m, off):
        xp = self.xp
        d = self._direction(g, w, lam, m, off)
        mo = self._mask(self.beta_1 * self._slot("m", kind, t) + (1 - self.beta_1) * d, m, off)
        s = self._mask(self.beta_2 * self._slot("s", kind, t) + (1 - self.beta_2) * (d * d), m, off)
        self._set_slot("m", kind, t, mo)
        self._set_slot("s", kind, t, s)
        rate = eta * math.sqrt(1 - self.beta_2 ** self.t) / (1 - self.beta_1 ** self.t)
        return self._add(w, -rate * mo / (xp.sqrt(s) + self.epsilon), m, off)


OPTIMIZERS = {"sgd": BookSGD, "momentum": Momentum, "nesterov": Nesterov, "adam": Adam}


def get_optimizer(name, net, **kw) -> Optimizer:
    """The optimizer ``name`` for ``net`` (keywords: lam, regularize_bias, momentum, beta_1, beta_2, epsilon)."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {name!r}")
    unknown = set(kw) - set(_KEYWORDS["adam"]) - set(_KEYWORDS["momentum"])
    if unknown:
        raise TypeError(f"get_optimizer() got unexpected keyword arguments {sorted(unknown)}")
    return OPTIMIZERS[name](net, **{k: v for k, v in kw.items() if k in _KEYWORDS[name]})


# the hyper-parameters each rule adds to lam and regularize_bias
RULE_PARAMS = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",),
               "adam": ("beta_1", "beta_2", "epsilon")}
# which keywords each rule uses (the others are accepted and ignored, so one call fits all)
_KEYWORDS = {name: ("lam", "regularize_bias") + params for name, params in RULE_PARAMS.items()}
