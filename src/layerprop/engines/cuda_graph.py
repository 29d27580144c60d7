"""Whole training steps captured in a CUDA graph (engine name ``"cuda_graph"``).

At batch 64 a step of a small network is a few dozen short kernels, and launching them from
Python costs more than running them. So :class:`CudaGraphTrainer` records *several* complete
training steps, each one

    rows of minibatch j  ->  X_j, Y_j sliced on the device (``index_select``)
    forward, g_T, backward, masked gradient      (``torch_engine``: the book's math, in place)
    the optimizer's update, masked               (book's SGD, momentum, nesterov or adam; as optim.py)

into one CUDA graph, and replays it: one launch runs ``steps_per_graph`` steps. Everything the graph
reads or writes lives at fixed addresses: the training set (moved to the device once), the
weights, the optimizer state, the per-batch buffers, and three small tensors filled before each
replay: the row indices of the block's minibatches, the step multipliers (eta_i, or Adam's
eta_i sqrt(1-beta_2^t)/(1-beta_1^t), computed on the host so schedules work), and the loss sums.

The graph is captured through torch tensors: CuPy refuses cuBLAS calls during stream capture.

The same step function runs eagerly (``capture=False``, the only mode on the CPU): that path is
what the CPU tests compare with the reference engine and ``optim.py``, step by step. On CUDA,
capture is the default. (Written and tested on torch CPU tensors only; see docs/gpu.md for what
a GPU run must still confirm.)

Numbers: the mean gradient is taken by scaling g_T by 1/n (or r / sum(r)) before the backward
pass rather than dividing the summed gradient afterwards (the backward pass is linear in g_T), so
results equal the reference's to rounding (float64: about 1e-15 relative), not bitwise. Phantom
weights are set to exactly 0.0 after every update; the optimizer state stays 0 on them because
every term of its update is 0 there (a non-finite gradient aside, which stops the run anyway).
"""

from __future__ import annotations

import math

import numpy as np

from ..optim import Optimizer, get_optimizer
from . import torch_engine
from .torch_engine import Buffers, Plan, TorchEngine, flat_views, gradient_, param_shapes

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


def supports(net) -> bool:
    """True for networks the torch engine computes (torch float32/float64 tensors, any device)."""
    return torch_engine.supports(net)


class CudaGraphEngine(TorchEngine):
    """The torch engine's gradient sums, plus :meth:`trainer`: many whole steps per CUDA-graph replay."""

    name = "cuda_graph"

    def trainer(self, net, X, Y, batch_size, optimizer="sgd", *, steps_per_graph=8, sample_weight=None,
                capture=None, alpha=0.0, **optimizer_kw):
        """A :class:`CudaGraphTrainer` for this network and training set."""
        return CudaGraphTrainer(net, X, Y, batch_size, optimizer, steps_per_graph=steps_per_graph,
                                sample_weight=sample_weight, capture=capture, alpha=alpha, **optimizer_kw)


class _StepBuffers(Buffers):
    """A step's buffers (the gradient as one flat vector) plus the sliced minibatch (x, y) and its row weights."""

    def __init__(self, plan, n, dtype, device, k_in, k_out, weighted):
        import torch

        super().__init__(plan, n, dtype, device, flat_grad=True)
        self.x = torch.empty((n, k_in), dtype=dtype, device=device)
        self.y = torch.empty((n, k_out), dtype=dtype, device=device)
        self.r = torch.empty(n, dtype=dtype, device=device) if weighted else None
        self.scale = torch.empty(n, dtype=dtype, device=device) if weighted else None


class CudaGraphTrainer:
    """Training steps on the device, ``steps_per_graph`` of them per CUDA-graph replay.

    Parameters
    ----------
    net : Network
        A network with torch tensors (``net.to(torch, device="cuda")``; CPU tensors run eagerly).
        Its weights are copied in; :meth:`sync` writes them back.
    X, Y : arrays (NumPy or torch)
        The whole training set; moved to the device once, in the network's dtype.
    batch_size : int
        The rows per step that the graph is captured for (other sizes run eagerly).
    optimizer : str or optim.Optimizer
        "sgd" (the book's), "momentum", "nesterov" or "adam", or an optimizer made for ``net`` by
        ``optim.get_optimizer``; its hyper-parameters and state are used, and :meth:`sync` writes
        the state back. Keywords (lam, regularize_bias, momentum, ...) go to ``get_optimizer``.
    steps_per_graph : int
        Minibatches per replay.
    sample_weight : array, optional
        One weight per row of X.
    capture : bool, optional
        Capture a CUDA graph (default: when the network is on CUDA). False runs the same steps eagerly.
    alpha : float
        scikit-learn's L2 term (the estimators): ``alpha / (the batch's weight sum) * W`` is added to
        the coefficients' mean gradient (not the biases'), before the optimizer's own ``lam`` term; the
        step's penalty ``alpha / 2 ||W||^2 / (weight sum)`` at w^(i) is recorded (``run(per_step=True)``).
        A batch of weight sum 0 gets neither. Default 0: none (lp.sgd's runs).
    """

    def __init__(self, net, X, Y, batch_size, optimizer="sgd", *, steps_per_graph=8, sample_weight=None,
                 capture=None, alpha=0.0, **optimizer_kw):
        import torch

        if not supports(net):
            raise ValueError(f"CudaGraphTrainer needs a network of torch float32/float64 tensors with built-in "
                             f"activations and losses; got {net!r} (use net.to(torch, device='cuda'))")
        self.net = net
        self.opt = optimizer if isinstance(optimizer, Optimizer) else get_optimizer(optimizer, net, **optimizer_kw)
        if self.opt.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.opt.name!r}")
        w0 = net.W[0]
        self.dtype, self.device = w0.dtype, w0.device
        self.capture = self.device.type == "cuda" if capture is None else bool(capture)
        if self.capture and self.device.type != "cuda":
            raise ValueError("capture=True needs the network on a CUDA device")
        self.b, self.k = _positive(batch_size, "batch_size"), _positive(steps_per_graph, "steps_per_graph")
        dev = lambda A: torch.as_tensor(A, device=self.device).to(self.dtype).contiguous()
        self.X, self.Y = dev(X), dev(Y)
        if self.Y.ndim == 1:
            self.Y = self.Y.reshape(-1, 1)
        if self.X.ndim != 2 or self.X.shape[1] != net.k[0] or tuple(self.Y.shape) != (self.X.shape[0], net.k[-1]):
            raise ValueError(f"X and Y must have shapes (n, {net.k[0]}) and (n, {net.k[-1]}); "
                             f"got {tuple(self.X.shape)} and {tuple(self.Y.shape)}")
        self.r = None if sample_weight is None else dev(sample_weight)
        self.plan = Plan(net)
        # the weights and each optimizer state as one flat vector each (W_t, b_t are views into it):
        # an update is then a few kernels for all the arrays together, not a few per array
        self._flat_w, (self.W, self.bias) = self._flat(net.W, net.b)
        self.state, self._flat_state = {}, {}
        for name, (Ws, bs) in self.opt.state.items():
            self._flat_state[name], self.state[name] = self._flat(Ws, bs)
        self._off = _flat_phantoms(self.plan)
        lam_b = self.opt.lam_b if self.plan.bias else self.opt.lam
        if self.opt.lam == lam_b:
            self._lam = float(self.opt.lam)
        else:  # biases not regularized: a vector of lam on the coefficients, lam_b on the biases
            self._lam = torch.cat([torch.full((math.prod(s),), self.opt.lam if len(s) == 2 else lam_b,
                                              dtype=self.dtype, device=self.device) for s in param_shapes(self.plan)])
        self._y_sums_one = bool(torch.all(self.Y.sum(dim=1) == 1)) if self.plan.loss == "softmax_cross_entropy" else False
        self.t = self.opt.t
        self._buffers = {}
        new = lambda *shape, dtype=self.dtype: torch.zeros(shape, dtype=dtype, device=self.device)
        self._rows, self._eta = new(self.k, self.b, dtype=torch.int64), new(self.k)
        self._loss, self._wsum, self._pen = new(self.k), new(self.k), new(self.k)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)) \
                or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0; got {alpha!r}")
        self.alpha = float(alpha)
        self._tiny = torch.finfo(self.dtype).tiny
        self._graph = None

    # -- one step (the same code eagerly and under capture) ------------------------------------
    def _buf(self, n):
        buf = self._buffers.get(n)
        if buf is None:
            if len(self._buffers) > 4:  # a few sizes at most (an epoch's last, partial batch)
                self._buffers = {self.b: self._buffers[self.b]} if self.b in self._buffers else {}
            buf = self._buffers[n] = _StepBuffers(self.plan, n, self.dtype, self.device, self.net.k[0],
                                                  self.net.k[-1], self.r is not None)
        return buf

    def _step(self, rows, eta, loss_out, wsum_out, pen_out=None):
        """One iteration on the rows ``rows`` (device int64) with step multiplier ``eta`` (0-d tensor):
        minibatch, Backpropagation (mean gradient), update; the loss sum goes to ``loss_out`` (and
        with ``alpha``, the weight sum to ``wsum_out`` and the penalty to ``pen_out``)."""
        import torch

        buf = self._buf(rows.shape[0])
        wsum = None
        torch.index_select(self.X, 0, rows, out=buf.x)
        torch.index_select(self.Y, 0, rows, out=buf.y)
        if self.r is None:
            scale = 1.0 / rows.shape[0]
        else:
            r = torch.index_select(self.r, 0, rows, out=buf.r)
            wsum = r.sum()
            wsum_out.copy_(wsum)
            scale = torch.div(r, wsum.clamp_min(self._tiny), out=buf.scale)  # a batch of weight 0: v = 0
        if self.r is None:  # the loss sum straight into loss_out
            gradient_(self.plan, self.W, self.bias, buf.x, buf.y, scale, buf, loss_out, self._y_sums_one)
        else:
            torch.dot(gradient_(self.plan, self.W, self.bias, buf.x, buf.y, scale, buf), buf.r, out=loss_out)
        coef = None
        if self.alpha:  # scikit-learn's alpha / (weight sum), 0 for a batch of weight 0; its penalty at w^(i)
            if wsum is None:
                coef = self.alpha / rows.shape[0]
            else:
                coef = torch.where(wsum > 0, self.alpha / wsum.clamp_min(self._tiny), 0.0)
            if pen_out is not None:
                squares = torch.stack([torch.dot(w.reshape(-1), w.reshape(-1)) for w in self.W]).sum()
                pen_out.copy_(squares.mul_(0.5 * coef))
        self._update_(buf, eta, coef)

    def _flat(self, Ws, bs):
        """Copies of the arrays Ws, bs as (one flat vector, (views of W_t, views of b_t)) in it."""
        import torch

        arrays = [a for pair in zip(Ws, bs) for a in pair if a is not None]
        flat = torch.cat([a.detach().reshape(-1) for a in arrays]).to(device=self.device, dtype=self.dtype)
        return flat, flat_views(flat, self.plan)

    def _update_(self, buf, eta, coef=None):
        """The optimizer's update (optim.py's rules) on all the weights at once, in place, as flat
        vectors; ``eta`` is the step multiplier; ``coef`` (a number or a 0-d tensor) times W is added
        to the coefficients' gradient first (scikit-learn's alpha; not the biases')."""
        import torch

        opt, w, g = self.opt, self._flat_w, buf.flat_g
        if coef is not None:
            for gw, W in zip(buf.gW, self.W):
                gw.add_(W, alpha=coef) if isinstance(coef, float) else gw.addcmul_(W, coef)
        if isinstance(self._lam, float):
            if self._lam:
                g.add_(w, alpha=self._lam)  # d = v + lam w
        else:
            g.addcmul_(w, self._lam)  # lam on the coefficients, lam_b on the biases
        if opt.name == "sgd":  # the book: w <- w - eta_i (v_i + lam w)
            w.addcmul_(g, eta, value=-1)
        elif opt.name in ("momentum", "nesterov"):  # u = mu u - eta_i d; w += u (or mu u - eta_i d)
            u = self._flat_state["velocity"]
            u.mul_(opt.mu).addcmul_(g, eta, value=-1)
            if opt.name == "momentum":
                w.add_(u)
            else:
                w.add_(u, alpha=opt.mu).addcmul_(g, eta, value=-1)
        else:  # adam; eta is eta_i sqrt(1 - b2^t) / (1 - b1^t)
            m, s = self._flat_state["m"], self._flat_state["s"]
            m.mul_(opt.beta_1).add_(g, alpha=1 - opt.beta_1)
            s.mul_(opt.beta_2).addcmul_(g, g, value=1 - opt.beta_2)
            q = torch.sqrt(s, out=g).add_(opt.epsilon)  # g is free now: reuse it
            w.addcmul_(torch.div(m, q, out=q), eta, value=-1)
        if self._off is not None:
            w.masked_fill_(self._off, 0)

    def _block(self):
        """``steps_per_graph`` steps on the rows in ``self._rows`` (what the graph records)."""
        for j in range(self.k):
            self._step(self._rows[j], self._eta[j], self._loss[j], self._wsum[j], self._pen[j])

    # -- capture and replay ---------------------------------------------------------------------
    def _tensors(self):
        """Every tensor a step changes that must survive capture's warm-up unchanged."""
        return [self._flat_w, *self._flat_state.values()]

    def _capture(self):
        """Warm up on a side stream (cuBLAS handles, workspaces), put the weights back, record one block."""
        import torch

        saved = [x.clone() for x in self._tensors()]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self._block()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._block()
        for x, s in zip(self._tensors(), saved):
            x.copy_(s)
        self._graph = graph

    def _run_block(self):
        if not self.capture:
            self._block()
            return
        if self._graph is None:
            self._capture()
        self._graph.replay()

    # -- what the training loop calls -----------------------------------------------------------
    def multipliers(self, etas):
        """The step multipliers of the next len(etas) steps: eta_i, or Adam's bias-corrected rate."""
        etas = np.asarray(etas, dtype=np.float64)
        if self.opt.name != "adam":
            return etas
        b1, b2 = self.opt.beta_1, self.opt.beta_2
        t = self.t + 1 + np.arange(len(etas))
        return np.array([eta * math.sqrt(1 - b2 ** int(i)) / (1 - b1 ** int(i)) for eta, i in zip(etas, t)])

    def run(self, rows, etas, per_step=False):
        """Iterations with row indices ``rows[j]`` and step sizes ``etas[j]`` (j = 0..m-1), in place.

        ``rows`` is an (m, b) integer array (NumPy, or a torch tensor already on the device) or a list
        of m 1-D arrays (an epoch's last batch may be shorter: it runs eagerly). Full blocks of ``steps_per_graph`` steps of ``batch_size`` rows are
        one graph replay each; the rest runs eagerly. Returns (loss_sum, weight_sum): the losses at
        w^(i) on each minibatch, summed over the m steps, as floats (one synchronization). A
        non-finite loss sum means the run diverged somewhere in these m steps: the caller can
        redo them step by step from its last copy of the weights to find where.

        ``per_step=True`` returns NumPy arrays of m values instead: (losses, weight sums, penalties),
        each step's loss sum and weight sum, and its ``alpha`` penalty (0 without ``alpha``).
        """
        import torch

        if getattr(rows, "ndim", None) == 2:  # (m, b), NumPy or a device tensor: no per-step lists
            m = rows.shape[0]
            sizes = np.full(m, rows.shape[1])
            flat = torch.as_tensor(rows, device=self.device).to(torch.int64).reshape(-1)
        else:
            rows = [np.asarray(r_, dtype=np.int64) for r_ in rows]
            m = len(rows)
            sizes = np.array([len(r_) for r_ in rows], dtype=np.int64)
            flat = torch.as_tensor(np.concatenate(rows) if m else np.zeros(0, np.int64), device=self.device)
        if len(etas) != m:
            raise ValueError(f"rows and etas must have the same length; got {m} and {len(etas)}")
        if m == 0:
            return (np.zeros(0), np.zeros(0), np.zeros(0)) if per_step else (0.0, 0.0)
        mult = torch.as_tensor(self.multipliers(etas), device=self.device).to(self.dtype)
        ends = np.cumsum(sizes)
        losses, wsums, pens = [], [], []
        j = 0
        while j < m:
            if j + self.k <= m and bool(np.all(sizes[j:j + self.k] == self.b)):
                start = ends[j] - sizes[j]
                self._rows.copy_(flat[start:start + self.k * self.b].view(self.k, self.b))
                self._eta.copy_(mult[j:j + self.k])
                self._run_block()
                if per_step:
                    losses.append(self._loss.clone())
                    wsums.append(self._wsum.clone())
                    pens.append(self._pen.clone())
                else:
                    losses.append(self._loss.sum())
                    if self.r is not None:
                        wsums.append(self._wsum.sum())
                j += self.k
            else:  # eagerly, one step
                loss, wsum, pen = self._loss.new_zeros(1), self._wsum.new_zeros(1), self._pen.new_zeros(1)
                self._step(flat[ends[j] - sizes[j]:ends[j]], mult[j], loss[0], wsum[0], pen[0])
                losses.append(loss if per_step else loss[0])
                pens.append(pen)
                if per_step or self.r is not None:
                    wsums.append(wsum if per_step else wsum[0])
                j += 1
        self.t += m
        if per_step:
            cat = lambda parts: torch.cat(parts).cpu().numpy().astype(np.float64)
            wsum = cat(wsums) if self.r is not None else sizes.astype(np.float64)
            return cat(losses), wsum, (cat(pens) if self.alpha else np.zeros(m))
        loss_sum = float(torch.stack(losses).sum())
        weight_sum = float(torch.stack(wsums).sum()) if self.r is not None else float(sizes.sum())
        return loss_sum, weight_sum

    def sync(self):
        """Write the weights (into ``net``) and the optimizer state (into the optimizer) back, as copies:
        call it at evaluation points, checkpoints and the end of training."""
        clone = lambda A: [None if a is None else a.clone() for a in A]
        self.net.replace_params(clone(self.W), clone(self.bias))
        for name, (Ws, bs) in self.state.items():
            self.opt.state[name] = (clone(Ws), clone(bs))
        self.opt.t = self.t
        return self.net

    def load(self):
        """Copy the weights and optimizer state from ``net`` and the optimizer in (after the caller
        changed them: restoring a checkpoint, say). The graph stays valid: addresses do not change."""
        for dst, src in zip(self.W + self.bias, list(self.net.W) + list(self.net.b)):
            if dst is not None:
                dst.copy_(src)
        for name, (Ws, bs) in self.state.items():
            for dst, src in zip(Ws + bs, self.opt.state[name][0] + self.opt.state[name][1]):
                if dst is not None:
                    dst.copy_(src)
        self.t = self.opt.t


def _flat_phantoms(plan):
    """The phantom positions of all the weights as one flat boolean vector (laid out as
    torch_engine.flat_views), or None for a dense network."""
    import torch

    offs = []
    for t in range(plan.T):
        offs += [plan.offW[t], plan.offb[t]] if plan.bias else [plan.offW[t]]
    if all(m is None for m in offs):
        return None
    dev = next(m for m in offs if m is not None).device
    return torch.cat([torch.zeros(math.prod(s), dtype=torch.bool, device=dev) if m is None else m.reshape(-1)
                      for m, s in zip(offs, param_shapes(plan))])


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)
