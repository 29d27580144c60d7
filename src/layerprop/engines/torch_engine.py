"""The torch engine: the reference's gradient sums as explicit tensor math, on CPU or CUDA tensors.

Same math as ``backprop.py`` (SSBD 20.6), written for torch without autograd:

- every array of a step lives in buffers allocated once per batch size (``torch.addmm(..., out=)``,
  in-place element-wise ops), so the same addresses are reused step after step (which is what a
  CUDA graph needs, see ``cuda_graph.py``);
- the bias is added inside the matrix product (``addmm``); ``o[t]`` is computed in place over
  ``a[t]``, and sigma'(a_t) is taken from o_t where the activation allows it (sigmoid: o (1 - o),
  tanh: 1 - o^2, each multiplied into g by torch's one fused backward kernel; relu/leaky relu:
  o > 0), so ``a[t]`` is kept only for softplus layers and a binary cross-entropy output;
- the folded ``g[t] = delta[t] * sigma'(a[t])`` is computed in the buffer of ``delta[t]``;
- a per-row scale (the sample weights r, or r / sum(r) for the mean) multiplies g_T once:
  everything after g_T is linear in it;
- masks are applied only to sparse layers (``masked_fill_``); the first layer skips delta_0
  (no gradient w.r.t. the input).

torch is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

SUPPORTED_ACTIVATIONS = frozenset({"sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity"})
SUPPORTED_LOSSES = frozenset({"squared", "softmax_cross_entropy", "binary_cross_entropy", "poisson"})
LEAKY_SLOPE = 0.01  # as activations.LEAKY_SLOPE


def is_torch_tensor(x) -> bool:
    """True for a torch tensor (checked without importing torch)."""
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "is_cuda")


def supports(net) -> bool:
    """True when this engine computes this network: torch float32/float64 weights (any device),
    built-in activations and losses."""
    w = net.W[0]
    return (is_torch_tensor(w) and str(w.dtype) in ("torch.float32", "torch.float64")
            and all(f.name in SUPPORTED_ACTIVATIONS for f in net.act[1:])
            and net.loss.name in SUPPORTED_LOSSES)


class Plan:
    """What a step needs to know about a network besides its weights: activation names, the loss,
    and per layer the phantom positions (``None`` where the layer is dense)."""

    def __init__(self, net):
        self.T = net.T
        self.k = tuple(net.k)
        self.act = [None] + [f.name for f in net.act[1:]]
        self.loss = net.loss.name
        self.bias = net.b[0] is not None
        off = lambda m: None if m is None or bool(m.all()) else m.logical_not()
        self.offW = [off(m) for m in net.masks]
        self.offb = [None] * self.T if net.bias_masks is None else [off(m) for m in net.bias_masks]
        # a_t is needed besides o_t only for softplus layers and a binary cross-entropy output
        self.keep_a = [t > 0 and (self.act[t] == "softplus" or (t == self.T and self.loss == "binary_cross_entropy"))
                       for t in range(self.T + 1)]


class Buffers:
    """Every array one step needs, for one (plan, batch size n, dtype, device).

    ``o[t]`` holds the layer's outputs (n, k_t); ``o_in[t]`` is what layer t's product reads: o[t]
    itself, or with ``widths`` the wider (n, widths[t]) array [o_t | 1 | 0 ...] of which o[t] is a
    view (the book's constant neuron as an extra input fixed at 1, zero padding to the width), for
    weights stored as blocks [W_t | b_t | 0 ...] (see cuda_graph.py). ``grad=False`` leaves gW, gb
    to the caller."""

    def __init__(self, plan, n, dtype, device, widths=None, grad=True):
        import torch

        k, T = plan.k, plan.T
        new = lambda *shape: torch.empty(shape, dtype=dtype, device=device)
        self.o = [None] + [new(n, k[t]) for t in range(1, T + 1)]
        self.o_in = list(self.o)
        if widths is not None:
            for t in range(1, T):
                self.o_in[t] = torch.zeros((n, widths[t]), dtype=dtype, device=device)
                if plan.bias:
                    self.o_in[t][:, k[t]] = 1
                self.o[t] = self.o_in[t][:, :k[t]]
        self.a = [new(n, k[t]) if plan.keep_a[t] else None for t in range(T + 1)]
        self.g = [None] + [new(n, k[t]) for t in range(1, T + 1)]
        self.tmp = [None] + [new(n, k[t]) for t in range(1, T + 1)]
        if grad:
            self.gW = [new(k[t + 1], k[t]) for t in range(T)]
            self.gb = [new(k[t + 1]) if plan.bias else None for t in range(T)]
        self.rows = new(n)


def activate_(name, z, a_keep=None):
    """o = sigma(a) in place over the buffer z that holds a (a copy of a goes to a_keep if given)."""
    if a_keep is not None:
        a_keep.copy_(z)
    if name == "sigmoid":
        return z.sigmoid_()
    if name == "tanh":
        return z.tanh_()
    if name == "relu":
        return z.relu_()
    if name == "leaky_relu":
        import torch.nn.functional as F

        return F.leaky_relu_(z, LEAKY_SLOPE)
    if name == "softplus":  # max(a, 0) + log1p(exp(-|a|)), as the reference (no threshold)
        e = z.abs().neg_().exp_().log1p_()
        return z.clamp_min_(0).add_(e)
    return z  # identity


def times_sigma_prime_(name, g, o, a, tmp):
    """g *= sigma'(a), from o = sigma(a) where possible (tmp: a scratch buffer of g's shape)."""
    import torch

    if name == "sigmoid":  # sigma' = o (1 - o): g * (1 - o) * o in one kernel
        torch.ops.aten.sigmoid_backward.grad_input(g, o, grad_input=g)
    elif name == "tanh":  # 1 - o^2: g * (1 - o * o) in one kernel
        torch.ops.aten.tanh_backward.grad_input(g, o, grad_input=g)
    elif name == "relu":  # 1 where a > 0, i.e. where o > 0
        g.masked_fill_(o <= 0, 0)
    elif name == "leaky_relu":
        g.mul_(tmp.fill_(LEAKY_SLOPE).masked_fill_(o > 0, 1))
    elif name == "softplus":  # sigma' = sigmoid(a)
        g.mul_(torch.sigmoid(a, out=tmp))
    return g


def forward_(plan, W, b, X, buf):
    """Forward pass (SSBD 20.6) into the buffers: o[t+1] = sigma_{t+1}(W_t o_t + b_t); returns the
    products' inputs [X, o_in[1], ..., o_T] (see :class:`Buffers`; its last entry is o_T)."""
    import torch

    ins = [X] + buf.o_in[1:]
    for t in range(plan.T):
        if b[t] is not None:
            torch.addmm(b[t], ins[t], W[t].t(), out=buf.o[t + 1])
        else:  # no bias, or W[t] is the block [W_t | b_t | 0 ...] against [o_t | 1 | 0 ...]
            torch.mm(ins[t], W[t].t(), out=buf.o[t + 1])
        activate_(plan.act[t + 1], buf.o[t + 1], buf.a[t + 1])
    return ins


def output_g_(plan, o_T, a_T, Y, buf, loss_terms=None, y_sums_one=False):
    """g_T = delta_T * sigma'(a_T) into buf.g[T], and the loss on each row into buf.rows.

    Softmax cross-entropy only: with ``loss_terms`` (an (n, k_T) tensor) the terms y * log p go there
    instead of the rows (the summed loss is minus their sum: one kernel here, the sum left to the
    caller, which can take it over many steps at once); ``y_sums_one`` says every row of Y sums to
    1 (one-hot labels), so g_T = softmax(o_T) - y."""
    import torch

    T, name = plan.T, plan.loss
    g, rows, tmp = buf.g[T], buf.rows, buf.tmp[T]
    if name == "softmax_cross_entropy" and (loss_terms is not None or y_sums_one):
        log_p = torch.log_softmax(o_T, dim=1)
        if loss_terms is None:
            torch.sum(torch.mul(Y, log_p, out=tmp), dim=1, out=rows).neg_()
        else:
            torch.mul(Y, log_p, out=loss_terms)
        torch.exp(log_p, out=g)
        if not y_sums_one:
            g.mul_(Y.sum(dim=1, keepdim=True))
        return g.sub_(Y)
    if name == "squared":  # delta_T = o_T - y; loss 1/2 ||o_T - y||^2
        torch.sub(o_T, Y, out=g)
        torch.sum(g * g, dim=1, out=rows).mul_(0.5)
        times_sigma_prime_(plan.act[T], g, o_T, a_T, tmp)
    elif name == "softmax_cross_entropy":  # identity output; g_T = softmax(o_T) sum(y) - y
        # loss: sum(y) logsumexp(o) - sum(y o) = -sum(y log softmax(o)); torch's fused log_softmax
        # kernel gives both terms (8 kernels where the expression takes 14: small batches count launches)
        log_p = torch.log_softmax(o_T, dim=1)
        torch.sum(torch.mul(Y, log_p, out=tmp), dim=1, out=rows).neg_()
        torch.exp(log_p, out=g).mul_(Y.sum(dim=1, keepdim=True)).sub_(Y)
    elif name == "binary_cross_entropy":  # sigmoid output: g_T = sigma(a_T) - y; loss softplus(a) - y a
        torch.sub(o_T, Y, out=g)
        e = a_T.abs().neg_().exp_().log1p_().add_(a_T.clamp_min(0))
        torch.sum(e.sub_(torch.mul(Y, a_T, out=tmp)), dim=1, out=rows)
    else:  # poisson, identity output on log-means: g_T = exp(o_T) - y
        torch.exp(o_T, out=g)
        y_log_y = Y * torch.where(Y > 0, Y, 1.0).log()
        torch.sum(g - Y * o_T + y_log_y - Y, dim=1, out=rows)
        g.sub_(Y)
    return g


def backward_weight_gradient_(plan, W, ins, buf):
    """Backward pass and gradient (SSBD 20.6) from g_T in buf.g[T]: gW_t = g_{t+1}^T o_t, gb_t = sum
    of g_{t+1}, masked on sparse layers; delta_t = g_{t+1} W_t, g_t = delta_t sigma'(a_t) for t >= 1.
    ``ins`` are forward_'s product inputs; with weight blocks [W_t | b_t | 0 ...] (buf.gb None) the
    first product gives [gW_t | gb_t | 0 ...] at once."""
    import torch

    g = buf.g
    for t in range(plan.T - 1, -1, -1):
        torch.mm(g[t + 1].t(), ins[t], out=buf.gW[t])
        if plan.offW[t] is not None:
            buf.gW[t].masked_fill_(plan.offW[t], 0)
        if buf.gb[t] is not None:
            torch.sum(g[t + 1], dim=0, out=buf.gb[t])
            if plan.offb[t] is not None:
                buf.gb[t].masked_fill_(plan.offb[t], 0)
        if t > 0:  # none for the input layer; W_t is the first k_t columns of a block
            torch.mm(g[t + 1], W[t][:, :plan.k[t]], out=g[t])
            times_sigma_prime_(plan.act[t], g[t], buf.o[t], buf.a[t], buf.tmp[t])
    return buf.gW, buf.gb


def gradient_(plan, W, b, X, Y, scale, buf, loss_terms=None, y_sums_one=False):
    """One batch: forward, g_T (times the per-row ``scale``: None, a number or an (n,) tensor),
    backward and the masked gradient into ``buf``; returns the unscaled loss per row (buf.rows),
    not written when ``loss_terms`` is given (see :func:`output_g_`)."""
    ins = forward_(plan, W, b, X, buf)
    g_T = output_g_(plan, ins[plan.T], buf.a[plan.T], Y, buf, loss_terms, y_sums_one)
    if scale is not None:
        g_T.mul_(scale[:, None] if getattr(scale, "ndim", 0) == 1 else scale)
    backward_weight_gradient_(plan, W, ins, buf)
    return buf.rows


class BufferCache:
    """Buffers by (batch size, dtype, device), a few at a time (the last batch of an epoch is smaller)."""

    def __init__(self):
        self._plan = None
        self._buffers = {}

    def plan(self, net):
        """The plan of ``net`` (rebuilt when the masks, activations or loss change)."""
        key = (id(net.masks), id(net.bias_masks), tuple(net.k), tuple(f.name for f in net.act[1:]), net.loss.name,
               net.b[0] is None)
        if self._plan is None or self._plan[0] != key or self._plan[1] is not net.masks:
            self._plan = (key, net.masks, Plan(net))
            self._buffers = {}
        return self._plan[2]

    def buffers(self, plan, n, dtype, device):
        key = (n, dtype, device)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 8:
                self._buffers.clear()
            buf = self._buffers[key] = Buffers(plan, n, dtype, device)
        return buf


class TorchEngine:
    """Gradient sums (SSBD 20.6) on torch float32/float64 tensors (CPU or CUDA), explicit math, no autograd."""

    name = "torch"

    def __init__(self):
        self._cache = BufferCache()

    def gradient_sums(self, net, X, Y, r=None):
        """Forward, backward and the summed, masked gradient (SSBD 20.6) on one batch."""
        plan = self._cache.plan(net)
        buf = self._cache.buffers(plan, X.shape[0], X.dtype, X.device)
        rows = gradient_(plan, net.W, net.b, X, Y, r, buf)
        if r is None:
            return float(rows.sum()), float(X.shape[0]), buf.gW, buf.gb
        return float(rows @ r), float(r.sum()), buf.gW, buf.gb

    def predict(self, net, X):
        """o_T for the rows of X (a new tensor)."""
        plan = self._cache.plan(net)
        buf = self._cache.buffers(plan, X.shape[0], X.dtype, X.device)
        return forward_(plan, net.W, net.b, X, buf)[-1].clone()
