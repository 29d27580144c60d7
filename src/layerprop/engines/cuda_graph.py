"""Whole training steps captured in a CUDA graph (engine name ``"cuda_graph"``).

At batch 64 a step of a small network is a few dozen short kernels, and launching them from
Python costs more than running them. So :class:`CudaGraphTrainer` records *several* complete
training steps, each one

    rows of minibatch j  ->  [X_j | 1 | Y_j] sliced on the device (one ``index_select``)
    forward, g_T, backward, gradient             (``torch_engine``: the book's math, in place)
    the optimizer's update, masked               (book's SGD, momentum, nesterov or adam; as optim.py)

into one CUDA graph, and replays it: one launch runs ``steps_per_graph`` steps. Everything the graph
reads or writes lives at fixed addresses: the training set (moved to the device once), the
weights, the optimizer state, the per-batch buffers, and three small tensors filled before each
replay: the row indices of the block's minibatches, the step multipliers (eta_i, or Adam's
eta_i sqrt(1-beta_2^t)/(1-beta_1^t), computed on the host so schedules work), and the loss sums.

At small batches a step's time is its number of kernels (a few microseconds each, whatever their
size), so the step is laid out to need few (:class:`Layout`): the bias is the weight of the book's
constant neuron, stored beside W_t, so no bias additions or sums are separate kernels; all weights,
their gradient and the optimizer state are one flat vector each, so an update is one to eight
kernels in all; the softmax cross-entropy's loss is summed once per replay. On one H100 the
constant-neuron blocks, the single gather and the once-per-replay loss took a 784-256-128-10 step
at batch 64 from 32 kernels (86 us of device time; flat update alone) to 24 (64 us)
(``benchmarks/profile_gpu_step.py``; BENCHMARKS.md).

The graph is captured through torch tensors: CuPy refuses cuBLAS calls during stream capture.

The same step function runs eagerly (``capture=False``, the only mode on the CPU): that path is
what the CPU tests compare with the reference engine and ``optim.py``, step by step. On CUDA,
capture is the default; tests/test_cuda.py and tests/test_sgd_device.py check the replays on a GPU
(they passed on an H100: docs/gpu.md).

Numbers: the mean gradient is taken by scaling g_T by 1/n (or r / sum(r)) before the backward
pass rather than dividing the summed gradient afterwards (the backward pass is linear in g_T), so
results equal the reference's to rounding (float64: about 1e-15 relative), not bitwise. Phantom
weights and their gradient are set to exactly 0.0 at every update, so the optimizer state stays 0
on them.
"""

from __future__ import annotations

import math

import numpy as np

from ..optim import Optimizer, get_optimizer
from . import torch_engine
from .torch_engine import Buffers, Plan, TorchEngine, gradient_

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


class Layout:
    """The trainer's weights: one flat vector, layer t stored as the block [W_t | b_t | 0 ...] of
    shape (k_{t+1}, width[t]).

    b_t is the weight of the book's constant neuron (an extra input fixed at 1), so one product of
    the block with [o_t | 1 | 0 ...] gives W_t o_t + b_t, and one product g_{t+1}^T [o_t | 1 | 0 ...]
    gives [gW_t | gb_t | 0 ...]: no separate bias sums. Widths are rounded up to multiples of 4
    (16-byte rows for the matrix products); the padding stays exactly 0 (its inputs are 0). One flat
    vector lets an update treat every array in a few kernels. The optimizer state and the gradient
    use the same layout."""

    def __init__(self, plan):
        self.plan = plan
        self.width = [-(-(plan.k[t] + plan.bias) // 4) * 4 for t in range(plan.T)]
        self.size = sum(plan.k[t + 1] * self.width[t] for t in range(plan.T))

    def blocks(self, flat):
        """The blocks [W_t | b_t | 0 ...] as views into ``flat``."""
        out, start = [], 0
        for t in range(self.plan.T):
            n = self.plan.k[t + 1] * self.width[t]
            out.append(flat[start:start + n].view(self.plan.k[t + 1], self.width[t]))
            start += n
        return out

    def split(self, blocks):
        """([W_t views], [b_t views, or None without biases]) of the blocks."""
        k = self.plan.k
        return ([B[:, :k[t]] for t, B in enumerate(blocks)],
                [B[:, k[t]] if self.plan.bias else None for t, B in enumerate(blocks)])

    def new(self, Ws, bs, like):
        """A flat vector holding the arrays Ws, bs (zero padding), in the dtype and device of ``like``."""
        import torch

        flat = torch.zeros(self.size, dtype=like.dtype, device=like.device)
        for dst, src in zip(sum(self.split(self.blocks(flat)), []), list(Ws) + list(bs)):
            if dst is not None:
                dst.copy_(src)
        return flat


class _StepBuffers(Buffers):
    """A step's buffers in the trainer's layout (inputs [o_t | 1 | 0 ...], the gradient as one flat
    vector of blocks) plus the sliced minibatch [x | 1 | 0 ... | y | 0 ...] and its row weights."""

    def __init__(self, layout, n, dtype, device, data_width, weighted):
        import torch

        super().__init__(layout.plan, n, dtype, device, widths=layout.width, grad=False)
        self.flat_g = torch.zeros(layout.size, dtype=dtype, device=device)
        self.gW, self.gb = layout.blocks(self.flat_g), [None] * layout.plan.T
        self.gW_coef = layout.split(self.gW)[0]
        self.xy = torch.empty((n, data_width), dtype=dtype, device=device)
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
        X, Y = dev(X), dev(Y)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        if X.ndim != 2 or X.shape[1] != net.k[0] or tuple(Y.shape) != (X.shape[0], net.k[-1]):
            raise ValueError(f"X and Y must have shapes (n, {net.k[0]}) and (n, {net.k[-1]}); "
                             f"got {tuple(X.shape)} and {tuple(Y.shape)}")
        self.r = None if sample_weight is None else dev(sample_weight)
        self.plan = Plan(net)
        self.layout = Layout(self.plan)
        # the step's plan: phantom entries are zeroed on the flat vectors (_update_), not per layer
        self._step_plan = Plan(net)
        self._step_plan.offW, self._step_plan.offb = [None] * net.T, [None] * net.T
        # the training set as rows [x | 1 | 0 ... | y | 0 ...]: one gather per step, x ready for the
        # first block [W_0 | b_0 | 0 ...]
        w0, kT = self.layout.width[0], net.k[-1]
        self._XY = torch.zeros((X.shape[0], w0 + -(-kT // 4) * 4), dtype=self.dtype, device=self.device)
        self._XY[:, :net.k[0]] = X
        if self.plan.bias:
            self._XY[:, net.k[0]] = 1
        self._XY[:, w0:w0 + kT] = Y
        del X
        self._flat_w = self.layout.new(net.W, net.b, self._XY)
        self._Wb = self.layout.blocks(self._flat_w)
        self.W, self.bias = self.layout.split(self._Wb)
        self.state, self._flat_state = {}, {}
        for name, (Ws, bs) in self.opt.state.items():
            self._flat_state[name] = self.layout.new(Ws, bs, self._XY)
            self.state[name] = self.layout.split(self.layout.blocks(self._flat_state[name]))
        self._off = self._phantoms()
        if self.opt.lam == self.opt.lam_b or not self.plan.bias:
            self._lam = float(self.opt.lam)
        else:  # biases not regularized: lam on the coefficients, lam_b on the biases
            self._lam = torch.full((self.layout.size,), float(self.opt.lam), dtype=self.dtype, device=self.device)
            for b in self.layout.split(self.layout.blocks(self._lam))[1]:
                b.fill_(self.opt.lam_b)
        softmax = self.plan.loss == "softmax_cross_entropy"
        self._y_sums_one = softmax and bool(torch.all(Y.sum(dim=1) == 1))
        self._terms = None  # softmax, unweighted: each step's y log p, summed once per block
        if softmax and self.r is None:
            self._terms = torch.zeros((self.k, self.b, kT), dtype=self.dtype, device=self.device)
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
            buf = self._buffers[n] = _StepBuffers(self.layout, n, self.dtype, self.device, self._XY.shape[1],
                                                  self.r is not None)
        return buf

    def _step(self, rows, eta, loss_out, wsum_out, pen_out=None, terms=None):
        """One iteration on the rows ``rows`` (device int64) with step multiplier ``eta`` (0-d tensor):
        minibatch, Backpropagation (mean gradient), update; the loss sum goes to ``loss_out`` (and
        with ``alpha``, the weight sum to ``wsum_out`` and the penalty to ``pen_out``). With
        ``terms`` (an (n, k_T) tensor; softmax, unweighted) the loss's terms go there instead and the
        caller sums them."""
        import torch

        n, w0, kT = rows.shape[0], self.layout.width[0], self.plan.k[-1]
        buf = self._buf(n)
        wsum = None
        torch.index_select(self._XY, 0, rows, out=buf.xy)
        x, y = buf.xy[:, :w0], buf.xy[:, w0:w0 + kT]
        if self.r is None:
            scale = 1.0 / n
        else:
            r = torch.index_select(self.r, 0, rows, out=buf.r)
            wsum = r.sum()
            wsum_out.copy_(wsum)
            scale = torch.div(r, wsum.clamp_min(self._tiny), out=buf.scale)  # a batch of weight 0: v = 0
        nb = [None] * self.plan.T  # the biases are in the blocks
        if self._terms is not None:
            sum_now = terms is None
            terms = buf.tmp[-1] if sum_now else terms
            gradient_(self._step_plan, self._Wb, nb, x, y, scale, buf, terms, self._y_sums_one)
            if sum_now:
                torch.sum(terms, dim=(0, 1), out=loss_out).neg_()
        elif self.r is None:
            torch.sum(gradient_(self._step_plan, self._Wb, nb, x, y, scale, buf), dim=0, out=loss_out)
        else:
            torch.dot(gradient_(self._step_plan, self._Wb, nb, x, y, scale, buf), buf.r, out=loss_out)
        coef = None
        if self.alpha:  # scikit-learn's alpha / (weight sum), 0 for a batch of weight 0; its penalty at w^(i)
            if wsum is None:
                coef = self.alpha / n
            else:
                coef = torch.where(wsum > 0, self.alpha / wsum.clamp_min(self._tiny), 0.0)
            if pen_out is not None:
                squares = torch.stack([torch.sum(w * w) for w in self.W]).sum()
                pen_out.copy_(squares.mul_(0.5 * coef))
        self._update_(buf, eta, coef)

    def _phantoms(self):
        """The phantom positions of every weight as one flat boolean vector in the layout, or None
        for a dense network."""
        import torch

        offs = [(self.plan.offW[t], self.plan.offb[t]) for t in range(self.plan.T)]
        if all(w is None and b is None for w, b in offs):
            return None
        flat = torch.zeros(self.layout.size, dtype=torch.bool, device=self.device)
        for (W, b), (offW, offb) in zip(zip(*self.layout.split(self.layout.blocks(flat))), offs):
            if offW is not None:
                W.copy_(offW)
            if offb is not None:
                b.copy_(offb)
        return flat

    def _update_(self, buf, eta, coef=None):
        """The optimizer's update (optim.py's rules) on all the weights at once, in place, as flat
        vectors; ``eta`` is the step multiplier; ``coef`` (a number or a 0-d tensor) times W is added
        to the coefficients' gradient first (scikit-learn's alpha; not the biases')."""
        import torch

        opt, w, g = self.opt, self._flat_w, buf.flat_g
        if self._off is not None:  # the masked gradient: the optimizer state stays 0 on phantom entries
            g.masked_fill_(self._off, 0)
        if coef is not None:
            for gw, W in zip(buf.gW_coef, self.W):
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
        if self._off is not None:  # phantom weights stay exactly 0
            w.masked_fill_(self._off, 0)

    def _block(self):
        """``steps_per_graph`` steps on the rows in ``self._rows`` (what the graph records)."""
        import torch

        for j in range(self.k):
            terms = None if self._terms is None else self._terms[j]
            self._step(self._rows[j], self._eta[j], self._loss[j], self._wsum[j], self._pen[j], terms)
        if self._terms is not None:  # each step's loss: minus the sum of its terms y log p
            torch.sum(self._terms.view(self.k, -1), dim=1, out=self._loss).neg_()

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
        import torch

        clone = lambda A: [None if a is None else a.clone(memory_format=torch.contiguous_format) for a in A]
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


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)
