"""SGD for neural networks (SSBD 20.6): ``lp.sgd``, the book's training loop.

    for i = 1..tau:
        sample a batch (sampling.batch_rows(seed, i, ...))
        v_i = Backpropagation on it (an engine's gradient sums, made means by ``combine``)
        w^(i+1) = w^(i) - eta_i (v_i + lam w^(i))          (optim.BookSGD; or another rule)
    output: the iterate best on the validation set (or the last, or the average)

Around the loop: evaluations every ``eval_every`` iterations (history, best-so-far, early
stopping, callback, progress), divergence detection, checkpoints and exact resume. The options
are documented once, in ``docs/training.md`` and in :func:`sgd`'s docstring.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from . import backprop as bp
from ._checks import check_int, check_real
from ._xp import array_device, array_namespace, asarray_like, is_numpy_array, to_numpy
from .network import Network
from .optim import RULE_PARAMS, get_optimizer
from .sampling import MODES, batch_rows, batches_per_epoch, examples_seen, rows_for_range
from .schedules import get_schedule

__all__ = ["sgd", "SGDResult", "DivergenceError", "combine"]

CHECKPOINT_NAME = "checkpoint.safetensors"
OUTPUTS = ("best", "last", "average")
STEPS_PER_GRAPH = 16  # training steps per CUDA-graph replay (engine "cuda_graph", see docs/gpu.md)


class DivergenceError(ArithmeticError):
    """Training produced a non-finite loss or weight. ``iteration`` names the step;
    ``result`` is an :class:`SGDResult` holding the best finite weights found before it."""

    def __init__(self, message, iteration=None, result=None):
        super().__init__(message)
        self.iteration = iteration
        self.result = result


@dataclass
class SGDResult:
    """What :func:`sgd` returns: the output network and how it was obtained."""

    network: Network
    history: list
    best_iteration: Optional[int]
    best_score: Optional[float]
    iterations: int
    recipe: dict
    stopped_early: bool = False
    elapsed: float = 0.0
    stop_reason: str = "completed"  # "completed", "early_stopping" or "callback"

    def __repr__(self):
        best = "" if self.best_iteration is None else f", best_iteration={self.best_iteration}, best_score={self.best_score:.6g}"
        return f"SGDResult({self.network!r}, iterations={self.iterations}{best}, stop_reason={self.stop_reason!r})"


# -- one step's gradient -------------------------------------------------------------------------
def combine(loss_sum, weight_sum, gW, gb, reduce=None):
    """A step's sums over the batch rows -> means: (mean loss, v_W, v_b).

    ``reduce(loss_sum, weight_sum, gW, gb)`` (for a distributed run: an all-reduce over ranks)
    returns the same four, summed; it is applied before dividing. A batch of total weight 0
    gives v = 0 (the step then only applies the lam w term).
    """
    if reduce is not None:
        loss_sum, weight_sum, gW, gb = reduce(loss_sum, weight_sum, gW, gb)
    if weight_sum == 0:
        return 0.0, [w * 0.0 for w in gW], [None if v is None else v * 0.0 for v in gb]
    return (loss_sum / weight_sum, [w / weight_sum for w in gW],
            [None if v is None else v / weight_sum for v in gb])


def grad_norm(gW, gb) -> float:
    """||v||: the Euclidean norm of the gradient over every weight and bias."""
    xp = array_namespace(gW[0])
    total = sum(float(xp.sum(w * w)) for w in gW) + sum(float(xp.sum(v * v)) for v in gb if v is not None)
    return math.sqrt(total)


def _clip(gW, gb, c):
    """v scaled down to norm c when ||v|| > c; returns (gW, gb, ||v|| before clipping)."""
    norm = grad_norm(gW, gb)
    if norm > c:
        s = c / norm
        gW, gb = [w * s for w in gW], [None if v is None else v * s for v in gb]
    return gW, gb, norm


# -- metrics -------------------------------------------------------------------------------------
def _mean_loss(net, X, Y):
    """The mean loss over the rows (arrays already checked)."""
    a, o = bp.forward(net.W, net.b, net.sigma, X)
    rows = bp.loss_rows(net.loss, a[-1], o[-1], Y)
    return float(array_namespace(rows).mean(rows))


def _accuracy(net, X, Y):
    """The fraction of rows where the predicted class is Y's: argmax of o_T vs argmax of Y; with one
    output, o_T and Y on the same side of 0.5 (sigmoid output) or 0 (any other output)."""
    o = to_numpy(bp.forward(net.W, net.b, net.sigma, X)[1][-1])
    y = to_numpy(Y)
    if o.shape[1] == 1:
        thr = 0.5 if net.act[-1].name == "sigmoid" else 0.0
        return float(np.mean((o[:, 0] > thr) == (y[:, 0] > thr)))
    return float(np.mean(np.argmax(o, axis=1) == np.argmax(y, axis=1)))


def _get_metric(metric):
    """(name, function(net, X, Y) -> float, greater_is_better)."""
    if metric is None or metric == "loss":
        return "loss", _mean_loss, False
    if metric == "accuracy":
        return "accuracy", _accuracy, True
    if isinstance(metric, tuple) and len(metric) == 2 and callable(metric[0]) and isinstance(metric[1], bool):
        fn, gib = metric
    elif callable(metric) and isinstance(getattr(metric, "greater_is_better", None), bool):
        fn, gib = metric, metric.greater_is_better
    else:
        raise TypeError(f"metric must be 'loss', 'accuracy', a callable(net, X, Y) with a boolean "
                        f"greater_is_better attribute, or a (callable, greater_is_better) tuple; got {metric!r}")
    return getattr(fn, "__name__", "custom"), (lambda net, X, Y: float(fn(net, X, Y))), gib


def _data_hash(*arrays) -> str:
    """A digest of the arrays' shapes, dtypes and bytes (C order; the same as hashing ``tobytes()``),
    read a chunk of rows at a time: no copy of a C-contiguous array, and a memory-mapped array
    (``np.memmap``) is read in runs of rows with bounded resident memory."""
    from .memmap import as_paged, row_chunks
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            continue
        a = as_paged(a) if isinstance(a, np.memmap) else to_numpy(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        if a.ndim == 0 or isinstance(a, np.memmap) or not a.flags.c_contiguous:
            parts = row_chunks(a) if a.ndim else [a]
        else:
            parts = [a]
        for c in parts:
            c = np.ascontiguousarray(c)
            if c.size:
                h.update(memoryview(c.reshape(-1)).cast("B"))
    return h.hexdigest()[:32]


@dataclass
class _Setup:
    """The checked arguments of one call."""

    X: object
    Y: object
    r: object
    val: Optional[tuple]
    tau: int
    schedule: object
    optimizer: str
    opt_kw: dict
    b: int
    mode: str
    seed: int
    eval_every: int
    output: str
    metric: tuple
    early_stopping: bool
    patience: int
    tol: float
    clip_norm: Optional[float]
    checkpoint: Optional[Path]
    checkpoint_every: Optional[int]
    recipe: dict = field(default_factory=dict)
    _hash: Optional[str] = None
    opt: object = None  # the optimizer built to check its arguments; the run uses it (_Run)

    @property
    def data_hash(self) -> str:
        """The digest of the data (X, Y, sample weights, validation) that a checkpoint records
        and a resume compares: computed on first use (a run without checkpoints never reads the
        data a second time)."""
        if self._hash is None:
            self._hash = _data_hash(self.X, self.Y, self.r, *(self.val or ()))
        return self._hash

    @data_hash.setter
    def data_hash(self, value):
        self._hash = value

    def evaluates_at(self, i) -> bool:
        """Whether iteration i ends with an evaluation: every eval_every iterations, and the last."""
        return i % self.eval_every == 0 or i == self.tau


def _mapped(A, net) -> bool:
    """A 2-D ``np.memmap`` given to a NumPy network: kept on disk, read a batch at a time."""
    return isinstance(A, np.memmap) and A.ndim == 2 and is_numpy_array(net.W[0])


def _check_mapped(net, A, name, n=None):
    """The checks of ``Network._check_X`` / ``_check_Y`` for a memory-mapped 2-D array, reading it a
    run of rows at a time (bounded resident memory); returns (a PagedMemmap, False). Its dtype may
    differ from the network's: each batch is converted when it is read (``_Run._batch``)."""
    from .memmap import as_paged, row_chunks
    if A.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array; got dtype {A.dtype}")
    k = net.k[0] if name == "X" else net.k[-1]
    if name == "X" and A.shape[1] != k:
        raise ValueError(f"X must have shape ({k},) or (n, {k}) (k_0 = {k} inputs); got {tuple(A.shape)}")
    if name == "X" and A.shape[0] < 1:
        raise ValueError("X has no rows; need at least 1 example")
    if name == "Y" and tuple(A.shape) != (n, k):
        raise ValueError(f"Y must have shape ({n}, {k}) (k_T = {k} outputs); got {tuple(A.shape)}")
    A = as_paged(A)
    if A.dtype.kind == "f":
        for c in row_chunks(A):
            if not math.isfinite(float(np.sum(c))) and not bool(np.all(np.isfinite(c))):
                raise ValueError(f"{name} contains NaN or inf")
    return A, False


def _check(net, X, Y, a) -> _Setup:
    """Validate every argument of :func:`sgd` (``a``: its keyword arguments)."""
    if not isinstance(net, Network):
        raise TypeError(f"net must be a layerprop Network; got {type(net).__name__}")
    if not net.trainable:
        raise ValueError("net uses the 'sign' activation, which is for forward use only; it cannot be trained")
    X, single = _check_mapped(net, X, "X") if _mapped(X, net) else net._check_X(X, min_rows=1)
    if single:
        raise ValueError(f"X must be a 2-D array of rows (n, {net.k[0]}); got a single example of shape {tuple(X.shape)}")
    n = X.shape[0]
    Y = _check_mapped(net, Y, "Y", n)[0] if _mapped(Y, net) else net._check_Y(Y, n, False)
    r = None if a["sample_weight"] is None else net._check_weights(a["sample_weight"], n)
    val = None
    if a["validation"] is not None:
        v = a["validation"]
        if not isinstance(v, (tuple, list)) or len(v) != 2:
            raise TypeError(f"validation must be a pair (X_val, Y_val); got {type(v).__name__}")
        Xv, one = net._check_X(v[0])
        val = (Xv, net._check_Y(v[1], Xv.shape[0], one))
    b = check_int(a["batch_size"], "batch_size", 1, n)
    if (a["iterations"] is None) == (a["epochs"] is None):
        raise ValueError(f"give exactly one of iterations and epochs; got iterations={a['iterations']!r}, epochs={a['epochs']!r}")
    if a["iterations"] is not None:
        tau = check_int(a["iterations"], "iterations")
    else:
        tau = check_int(a["epochs"], "epochs") * batches_per_epoch(n, b)
    mode = a["sampling"] if a["sampling"] is not None else ("uniform" if a["iterations"] is not None else "epochs")
    if mode not in MODES:
        raise ValueError(f"sampling must be one of {MODES} or None; got {a['sampling']!r}")
    lam = check_real(a["l2"], "l2", low=0)
    check_real(a["step_size"], "step_size", low=0, low_open=True)
    schedule = get_schedule(a["schedule"], a["step_size"], total=tau, **a["schedule_kw"])
    opt_kw = dict(lam=lam, regularize_bias=bool(a["regularize_bias"]), momentum=a["momentum"],
                  beta_1=a["beta_1"], beta_2=a["beta_2"], epsilon=a["epsilon"])
    # checks the name and the rule's parameters; the run then uses this optimizer: it keeps no
    # reference to net's weights, and the network the run trains (a copy of net, or rank 0's
    # weights in a copy) has net's namespace, device, dtype and masks (net was moved to its device above)
    opt = get_optimizer(a["optimizer"], net, **opt_kw)
    seed = a["seed"]
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)
    seed = check_int(seed, "seed", 0)
    default_eval = max(batches_per_epoch(n, b), -(-tau // 1000))
    eval_every = min(tau, default_eval) if a["eval_every"] is None else check_int(a["eval_every"], "eval_every")
    output = a["output"] if a["output"] is not None else ("best" if val is not None else "last")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}; got {a['output']!r}")
    if output == "best" and val is None:
        raise ValueError("output='best' needs validation data: pass validation=(X_val, Y_val) or output='last'")
    metric = _get_metric(a["metric"])
    patience = check_int(a["patience"], "patience")
    tol = check_real(a["tol"], "tol", low=0)
    clip = None if a["clip_norm"] is None else check_real(a["clip_norm"], "clip_norm", low=0, low_open=True)
    ckpt, every = a["checkpoint"], a["checkpoint_every"]
    if ckpt is not None:
        if not isinstance(ckpt, (str, Path)) and not hasattr(ckpt, "__fspath__"):
            raise TypeError(f"checkpoint must be a folder path; got {type(ckpt).__name__}")
        ckpt = Path(ckpt)
        every = eval_every if every is None else check_int(every, "checkpoint_every")
    elif every is not None or a["resume"]:
        raise ValueError("checkpoint_every and resume=True need checkpoint=FOLDER")
    if a["callback"] is not None and not callable(a["callback"]):
        raise TypeError(f"callback must be callable or None; got {type(a['callback']).__name__}")
    if a["progress"] not in (None, True, False):
        raise TypeError(f"progress must be None (auto), True or False; got {a['progress']!r}")
    s = _Setup(X, Y, r, val, tau, schedule, a["optimizer"], opt_kw, b, mode, seed, eval_every, output,
               metric, bool(a["early_stopping"]), patience, tol, clip, ckpt, every, opt=opt)
    return s


def _recipe(s: _Setup, a: dict, engine_name: str) -> dict:
    """Everything needed to replay the run (JSON-serializable)."""
    sched = a["schedule"]
    sched_name = sched if isinstance(sched, str) else f"callable:{getattr(sched, '__name__', 'schedule')}"
    kw = RULE_PARAMS[s.optimizer]
    return {
        "algorithm": "sgd", "iterations": s.tau, "epochs": a["epochs"], "step_size": float(a["step_size"]),
        "schedule": sched_name, "schedule_params": dict(a["schedule_kw"]), "l2": s.opt_kw["lam"],
        "regularize_bias": s.opt_kw["regularize_bias"], "batch_size": s.b, "sampling": s.mode,
        "optimizer": s.optimizer, "optimizer_params": {k: float(s.opt_kw[k]) for k in kw}, "seed": s.seed,
        "eval_every": s.eval_every, "output": s.output, "metric": s.metric[0], "early_stopping": s.early_stopping,
        "patience": s.patience, "tol": s.tol, "clip_norm": s.clip_norm, "sample_weight": s.r is not None,
        "validation": s.val is not None, "n_samples": int(s.X.shape[0]), "engine": engine_name,
    }


# -- the run ---------------------------------------------------------------------------------------
class _Run:
    """The state of one training run: weights, optimizer, counters, best-so-far, history."""

    dist = None  # a distributed run's layerprop.distributed.Group (issue 9)
    tr = None  # the engine's CudaGraphTrainer, made at the first chunk that uses it

    def __init__(self, net, s: _Setup, engine, recipe, callback, progress, reduce=None):
        self.net, self.s, self.engine, self.recipe = net, s, engine, recipe
        self.opt = s.opt  # built (and checked) by _check, for a network like this one
        self.callback, self.progress, self.reduce = callback, progress, reduce
        self.xp = array_namespace(net.W[0])
        self.i = 0
        self.history = []
        self.best = None  # (W, b) copies of the best iterate
        self.best_iteration = self.best_score = None
        self.bad_evals = 0
        self.good = (self._copy(net.W), self._copy(net.b))  # last finite evaluated weights
        self.avg = (self._copy(net.W), self._copy(net.b)) if s.output == "average" else None
        self.acc = [0.0, 0.0]  # loss sum and weight sum since the last evaluation
        self.last_norm = None
        self.elapsed0, self.t0 = 0.0, time.perf_counter()
        self.stop_reason = None
        # the allocation-free step (step_sums): the book's update on NumPy weights, nothing between
        # the sums and the update (no clipping or averaging; a distributed run all-reduces the sums first)
        self._fold = (s.optimizer == "sgd" and hasattr(self.opt, "step_sums") and self.opt.numpy
                      and s.clip_norm is None and self.avg is None)  # reduce: all-reduced sums first (step)

    def _copy(self, arrays):
        xp = self.xp
        return [None if w is None else xp.asarray(w, copy=True) for w in arrays]

    def elapsed(self):
        return self.elapsed0 + time.perf_counter() - self.t0

    def _batch(self, A, rows):
        if A is None:
            return None
        if is_numpy_array(A):
            B = A[rows]
            if isinstance(A, np.memmap):  # read from disk; maybe another dtype (_check_mapped)
                B = np.asarray(B).astype(self.net.W[0].dtype, copy=False)
            return B
        idx = self.xp.asarray(np.array(rows, dtype=np.int64), device=array_device(A))
        return self.xp.take(A, idx, axis=0)

    # -- iterations --
    def step(self, i):
        """Iteration i: sample, Backpropagation, combine, (clip), update, (average)."""
        s, net = self.s, self.net
        rows = batch_rows(s.seed, i, s.X.shape[0], s.b, s.mode)
        if self.dist is not None:
            rows = self.dist.share(rows)  # this rank's part of the batch
        loss_sum, wsum, gW, gb = self.engine.gradient_sums(net, self._batch(s.X, rows), self._batch(s.Y, rows),
                                                           self._batch(s.r, rows))
        reduce, evaluates = self.reduce, s.evaluates_at(i)
        if reduce is not None and self._fold and not evaluates:
            loss_sum, wsum, gW, gb = reduce(loss_sum, wsum, gW, gb)  # distributed: fold the all-reduced sums
            reduce = None
        if self._fold and type(wsum) is float and wsum != 0 and reduce is None and not evaluates:
            # the book's update straight from the sums (v_i = sums / wsum folded in), in place
            loss = loss_sum / wsum
            if not math.isfinite(loss):
                raise self._diverged(i, f"the loss is {loss}")
            self.opt.step_sums(net, gW, gb, s.schedule(i), wsum)
            self.acc[0] += float(loss_sum)
            self.acc[1] += float(wsum)
            return
        loss, gW, gb = combine(loss_sum, wsum, gW, gb, reduce)
        if self.dist is not None:
            loss_sum, wsum = self.dist.totals  # the all-reduced sums
        if not math.isfinite(loss):
            raise self._diverged(i, f"the loss is {loss}")
        if s.clip_norm is not None:
            gW, gb, self.last_norm = _clip(gW, gb, s.clip_norm)
        elif evaluates:
            self.last_norm = grad_norm(gW, gb)
        self.opt.step(net, gW, gb, s.schedule(i))
        self.acc[0] += float(loss_sum)
        self.acc[1] += float(wsum)
        if self.avg is not None:
            k = i  # the average of w^(2)..w^(i+1)
            for avg, cur in zip(self.avg[0] + self.avg[1], list(net.W) + list(net.b)):
                if avg is not None:
                    avg += (cur - avg) / k

    def trainer_ok(self):
        """Whether the engine's whole-step trainer (engine "cuda_graph") can run this training: it
        has no gradient clipping, iterate averaging or all-reduce inside its steps."""
        from .engines.cuda_graph import OPTIMIZERS
        s = self.s
        return (hasattr(self.engine, "trainer") and s.clip_norm is None and self.avg is None
                and self.reduce is None and self.dist is None and s.optimizer in OPTIMIZERS)

    def fast_ok(self):
        """Whether the engine's compiled loops can run these iterations: ``run_book_sgd`` (batch 1,
        the book's update) or ``run_minibatch_sgd`` (b > 1, where the engine takes the network,
        batch size and update rule), with nothing between the gradient and the update."""
        s = self.s
        if s.b == 1:
            compiled = hasattr(self.engine, "run_book_sgd") and s.optimizer == "sgd"
        else:
            compiled = (hasattr(self.engine, "run_minibatch_sgd")
                        and self.engine.minibatch_ok(self.net, s.b, s.optimizer))
        return (compiled and s.clip_norm is None and s.r is None and self.avg is None
                and self.reduce is None and is_numpy_array(self.net.W[0]))

    def numpy_side(self):
        """The context of the run's NumPy work (evaluations, gradient norms) while the engine's
        compiled loops do the steps on their own threads: one BLAS thread, because a multi-threaded
        OpenBLAS keeps its workers spinning for ~0.1 s after each call, and they would take a core
        from the next chunk's loop."""
        if self.fast_ok() and hasattr(self.engine, "one_blas_thread"):
            return self.engine.one_blas_thread()
        return contextlib.nullcontext()

    def run(self, i0, i1):
        """Iterations i0+1 .. i1 (a chunk between evaluations and checkpoints)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is checked
            if self.trainer_ok():
                self._run_trainer(i0, i1)
            elif self.fast_ok():
                self._run_fast(i0, i1)
            else:
                for i in range(i0 + 1, i1 + 1):
                    self.step(i)
        self.i = i1
        self.progress.update(i1 - i0)

    def _chunk_rows(self, i0, i1):
        """The rows of iterations i0+1 .. i1: an (m, b) array when every batch has b rows, else a
        list of m row arrays (sampling="epochs": an epoch's last batch may be shorter)."""
        s = self.s
        n, m = s.X.shape[0], i1 - i0
        flat = rows_for_range(s.seed, i0 + 1, i1 + 1, n, s.b, s.mode)
        if flat.shape[0] == m * s.b:
            return flat.reshape(m, s.b)
        seen = np.array([examples_seen(i, n, s.b, s.mode) for i in range(i0, i1 + 1)])
        return np.split(flat, np.cumsum(np.diff(seen))[:-1])

    def _run_trainer(self, i0, i1):
        """Iterations i0+1 .. i1 through the engine's trainer (whole steps per CUDA-graph replay on
        a GPU, the same steps eagerly elsewhere); then the weights and optimizer state are written
        back to ``self.net`` and ``self.opt`` (``sync``), so that at every chunk boundary they hold
        w^(i1+1). The gradient norm of an evaluation's iteration is measured before its step, from
        the trainer's weights, as ``step`` does. A non-finite loss sum means a step of the chunk
        diverged: the chunk is redone step by step from ``self.net`` (still w^(i0+1)) to find it."""
        s, net = self.s, self.net
        if self.tr is None:
            self.tr = self.engine.trainer(net, s.X, s.Y, s.b, self.opt, steps_per_graph=STEPS_PER_GRAPH,
                                          sample_weight=s.r)
        tr = self.tr
        rows = self._chunk_rows(i0, i1)
        etas = [s.schedule(i) for i in range(i0 + 1, i1 + 1)]
        head = i1 - i0 - 1 if s.evaluates_at(i1) else i1 - i0
        loss_sum, wsum = tr.run(rows[:head], etas[:head])
        norm = self.last_norm
        if head < i1 - i0 and math.isfinite(loss_sum):  # the last iteration's ||v_i||, at w^(i1)
            at = net.copy()
            at.replace_params(list(tr.W), list(tr.bias))
            last = rows[-1]
            part = self.engine.gradient_sums(at, self._batch(s.X, last), self._batch(s.Y, last),
                                             self._batch(s.r, last))
            norm = grad_norm(*combine(*part)[1:])
            more = tr.run(rows[head:], etas[head:])
            loss_sum, wsum = loss_sum + more[0], wsum + more[1]
        if not math.isfinite(loss_sum):
            for i in range(i0 + 1, i1 + 1):  # raises at the first non-finite loss
                self.step(i)
            tr.load()  # none there (the two paths round differently): go on from the step path's weights
            return
        tr.sync()
        self.last_norm = norm
        self.acc[0] += float(loss_sum)
        self.acc[1] += float(wsum)

    def _run_fast(self, i0, i1):
        """Iterations i0+1 .. i1 in the engine's compiled loop (the book's update or the run's update
        rule); the last iteration's gradient norm is measured by the loop itself where it can
        (``measures_norm``: large batches), else from a copy of the weights before that iteration."""
        s, net = self.s, self.net
        before = (self._copy(net.W), self._copy(net.b))
        state = self.opt.state_dict() if self.opt.state else None  # (the loop updates it in place)
        rows = self._chunk_rows(i0, i1)
        etas = np.array([s.schedule(i) for i in range(i0 + 1, i1 + 1)], dtype=np.float64)
        norms, last = [], None
        if s.b > 1 and self.engine.measures_norm(len(rows[-1]), self.opt):
            loss_sum = self._compiled_steps(rows, etas, norms)
        else:
            loss_sum = self._compiled_steps(rows[:-1], etas[:-1])
            last = (self._copy(net.W), self._copy(net.b))
            loss_sum += self._compiled_steps(rows[-1:], etas[-1:])
        if not (math.isfinite(loss_sum) and self._finite(net.W, net.b)):
            net.replace_params(*before)  # find the exact iteration with the step-by-step path
            if state is not None:
                self.opt.load_state_dict(state)
            for i in range(i0 + 1, i1 + 1):
                self.step(i)
            raise self._diverged(i1, "a weight is not finite")
        self.acc[0] += float(loss_sum)
        self.acc[1] += float(rows.size if isinstance(rows, np.ndarray) else sum(len(r) for r in rows))
        if last is None:
            self.last_norm = norms[-1]
            return
        tmp = net.copy()
        tmp.replace_params(*last)
        _, wsum, gW, gb = self.engine.gradient_sums(tmp, self._batch(s.X, rows[-1]), self._batch(s.Y, rows[-1]), None)
        self.last_norm = grad_norm(*combine(0.0, wsum, gW, gb)[1:])

    def _compiled_steps(self, rows, etas, norm_out=None):
        """The engine's compiled loop over the batches ``rows`` (an (m, b) array, or a list of row
        arrays where an epoch's last batch is shorter: each run of equal sizes is one call);
        ``norm_out`` receives the last iteration's gradient norm (``run_minibatch_sgd``)."""
        s, net = self.s, self.net
        lam, rb = s.opt_kw["lam"], s.opt_kw["regularize_bias"]
        if isinstance(rows, np.ndarray):
            if s.b == 1:
                return self.engine.run_book_sgd(net, s.X, s.Y, rows.ravel(), etas, lam, rb)
            return self.engine.run_minibatch_sgd(net, s.X, s.Y, rows, etas, lam, rb, opt=self.opt, norm_out=norm_out)
        total, i = 0.0, 0
        while i < len(rows):
            j = i + 1
            while j < len(rows) and len(rows[j]) == len(rows[i]):
                j += 1
            total += self.engine.run_minibatch_sgd(net, s.X, s.Y, np.stack(rows[i:j]), etas[i:j], lam, rb,
                                                   opt=self.opt, norm_out=norm_out if j == len(rows) else None)
            i = j
        return total

    def _finite(self, W, b):
        xp = self.xp
        return all(bool(xp.all(xp.isfinite(w))) for w in list(W) + list(b) if w is not None)

    # -- evaluation --
    def evaluate(self):
        """A history row at iteration i; best-so-far, early stopping and the callback."""
        s, net, i = self.s, self.net, self.i
        if not self._finite(net.W, net.b):
            raise self._diverged(i, "a weight is not finite")
        name, fn, greater = s.metric
        row = {"iteration": i, "epoch": examples_seen(i, s.X.shape[0], s.b, s.mode) / s.X.shape[0],
               "eta": s.schedule(i) if i >= 1 else None,
               "train_loss": self.acc[0] / self.acc[1] if self.acc[1] > 0 else None,
               "val_loss": None, "val_metric": None, "grad_norm": self.last_norm}
        self.acc = [0.0, 0.0]
        score = None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if s.val is not None:
                row["val_loss"] = (_mean_loss if self.dist is None else self.dist.mean_loss)(net, *s.val)
                row["val_metric"] = row["val_loss"] if name == "loss" else fn(net, *s.val)
                score = row["val_metric"]
            elif s.early_stopping:
                score = fn(net, s.X, s.Y)
        row["elapsed"] = self.elapsed()
        self.history.append(row)
        self.good = (self._copy(net.W), self._copy(net.b))
        if score is not None and math.isfinite(score):
            self._track(score, greater)
        self.progress.evaluation(row)
        if self.callback is not None and self.callback(dict(row)) is False:
            self.stop_reason = "callback"

    def _track(self, score, greater):
        s = self.s
        better = self.best_score is None or (score > self.best_score if greater else score < self.best_score)
        improved = self.best_score is None or (score > self.best_score + s.tol if greater else score < self.best_score - s.tol)
        if better:
            self.best_score, self.best_iteration = score, self.i
            if s.val is not None:
                self.best = (self._copy(self.net.W), self._copy(self.net.b))
        self.bad_evals = 0 if improved else self.bad_evals + 1
        if s.early_stopping and self.bad_evals >= s.patience:
            self.stop_reason = "early_stopping"

    # -- output --
    def output_network(self):
        s, net = self.s, self.net
        out = net.copy()
        if s.output == "best" and self.best is not None:
            out.replace_params(*self._copy_pair(self.best))
        elif s.output == "average":
            out.replace_params(*self._copy_pair(self.avg))
        return out

    def _copy_pair(self, pair):
        return self._copy(pair[0]), self._copy(pair[1])

    def result(self, reason=None):
        reason = reason or self.stop_reason or "completed"
        return SGDResult(self.output_network(), list(self.history), self.best_iteration, self.best_score, self.i,
                         dict(self.recipe), reason in ("early_stopping", "callback"), self.elapsed(), reason)

    def _diverged(self, i, what):
        """A DivergenceError at iteration i; its result keeps the best (or last evaluated) finite weights."""
        res = self.result("diverged")
        res.iterations = i - 1
        keep = self.best if (self.s.output == "best" and self.best is not None) else self.good
        res.network = self.net.copy()
        res.network.replace_params(*self._copy_pair(keep))
        eta = self.s.schedule(i) if i >= 1 else None
        return DivergenceError(
            f"training diverged at iteration {i}: {what} (eta_i = {eta:.3g}, step_size = "
            f"{self.recipe['step_size']:.3g}); try a smaller step_size (or clip_norm=). "
            f"err.result holds the best finite weights found before it.", iteration=i, result=res)

    # -- checkpoints --
    def state(self) -> tuple:
        """(state arrays, info) for a checkpoint: everything needed to continue exactly."""
        arrays = {f"opt.{k}": v for k, v in self.opt.state_dict().items()}
        for tag, pair in (("best", self.best), ("avg", self.avg), ("good", self.good)):
            if pair is None:
                continue
            for kind, arrs in zip("Wb", pair):
                for t, w in enumerate(arrs):
                    if w is not None:
                        arrays[f"{tag}.{kind}.{t}"] = np.array(to_numpy(w), copy=True)
        info = {"iteration": self.i, "recipe": self.recipe, "data": self.s.data_hash, "history": self.history,
                "best_iteration": self.best_iteration, "best_score": self.best_score, "bad_evals": self.bad_evals,
                "acc": list(self.acc), "grad_norm": self.last_norm, "elapsed": self.elapsed(),
                "stop_reason": self.stop_reason, "has_best": self.best is not None}
        return arrays, info

    def restore(self, net, arrays, info):
        """Continue from a checkpoint's network, state arrays and info."""
        conv = lambda a, like: None if like is None else asarray_like(np.array(a, copy=True), like)
        self.net.replace_params([conv(net.W[t], w) for t, w in enumerate(self.net.W)],
                                [None if v is None else conv(net.b[t], v) for t, v in enumerate(self.net.b)])
        self.opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})

        def pair(tag):
            W = [conv(arrays[f"{tag}.W.{t}"], w) for t, w in enumerate(self.net.W)]
            b = [None if v is None else conv(arrays[f"{tag}.b.{t}"], v) for t, v in enumerate(self.net.b)]
            return W, b
        self.best = pair("best") if info["has_best"] else None
        self.avg = pair("avg") if self.avg is not None else None
        self.good = pair("good")
        self.i, self.history = int(info["iteration"]), list(info["history"])
        self.best_iteration, self.best_score = info["best_iteration"], info["best_score"]
        self.bad_evals, self.acc = int(info["bad_evals"]), list(info["acc"])
        self.last_norm, self.elapsed0 = info["grad_norm"], float(info["elapsed"])
        self.stop_reason = info["stop_reason"]
        if self.tr is not None:
            self.tr.load()


def _check_resume(run: _Run, ck_net, info, path):
    """The checkpoint must come from the same network shape, data and recipe (iterations may grow)."""
    net = run.net
    if tuple(ck_net.k) != tuple(net.k) or ck_net.activation_names != net.activation_names \
            or ck_net.loss_name != net.loss_name or (ck_net.bias_masks is None) != (net.bias_masks is None) \
            or not all(np.array_equal(to_numpy(a), to_numpy(b)) for a, b in zip(ck_net.masks, net.masks)) \
            or ck_net.dtype != to_numpy(net.W[0]).dtype:
        raise ValueError(f"resume=True: the checkpoint {path} holds a different network "
                         f"({ck_net!r}) than net ({net!r})")
    old, new = info["recipe"], run.recipe
    skip = {"iterations", "epochs"} if new["schedule"] != "cosine" else set()
    diff = [k for k in sorted(set(old) | set(new)) if k not in skip and old.get(k) != new.get(k)]
    if diff:
        details = ", ".join(f"{k}: checkpoint {old.get(k)!r} vs now {new.get(k)!r}" for k in diff)
        raise ValueError(f"resume=True: the recipe differs from the checkpoint's ({details})")
    if info["data"] != run.s.data_hash:
        raise ValueError("resume=True: the training data (X, Y, sample_weight or validation) differ from the "
                         "checkpoint's")
    if int(info["iteration"]) > run.s.tau:
        raise ValueError(f"resume=True: the checkpoint is at iteration {info['iteration']}, past "
                         f"iterations={run.s.tau}")


def _save_checkpoint(run: _Run, folder: Path):
    from . import io
    if run.dist is not None and not run.dist.writer:
        return  # rank 0 alone writes
    arrays, info = run.state()
    io.save_checkpoint(folder / CHECKPOINT_NAME, run.net, arrays, info)


def _loop(run: _Run, s: _Setup):
    """Chunks of iterations up to the next evaluation or checkpoint, until tau or a stop."""
    if run.stop_reason == "early_stopping":
        return
    run.stop_reason = None
    with run.numpy_side():
        _chunks(run, s)


def _chunks(run: _Run, s: _Setup):
    """The chunks of ``_loop``: run, evaluate, checkpoint."""
    while run.i < s.tau:
        i0 = run.i
        nxt = min(s.tau, (i0 // s.eval_every + 1) * s.eval_every)
        if s.checkpoint is not None:
            nxt = min(nxt, (i0 // s.checkpoint_every + 1) * s.checkpoint_every)
        run.run(i0, nxt)
        if s.evaluates_at(nxt):
            run.evaluate()
        if s.checkpoint is not None and (nxt % s.checkpoint_every == 0 or nxt == s.tau or run.stop_reason):
            if not run._finite(run.net.W, run.net.b):
                raise run._diverged(nxt, "a weight is not finite")
            _save_checkpoint(run, s.checkpoint)
        if run.stop_reason:
            return


def sgd(net, X, Y, *, iterations=None, epochs=None, step_size=0.1, schedule="constant", power_t=0.5,
        step_every=1000, gamma=0.5, l2=0.0, batch_size=1, sampling=None, optimizer="sgd", momentum=0.9,
        beta_1=0.9, beta_2=0.999, epsilon=1e-8, regularize_bias=True, validation=None, eval_every=None,
        output=None, metric=None, early_stopping=False, patience=10, tol=0.0, clip_norm=None,
        sample_weight=None, seed=0, engine="auto", checkpoint=None, checkpoint_every=None, resume=False,
        callback=None, progress=None, verbose=False, distributed=False, device=None) -> SGDResult:
    """Train ``net`` with SGD (SSBD 20.6): w^(i+1) = w^(i) - eta_i (v_i + lam w^(i)), i = 1..tau.

    Starts from ``net``'s current weights (``net`` itself is never modified) and returns an
    :class:`SGDResult`. Every option is described in ``docs/training.md``.

    Parameters
    ----------
    net : Network
    X, Y : arrays of shape (n, k_0) and (n, k_T)
    iterations, epochs : int
        tau, or a number of passes (tau = epochs * ceil(n / batch_size)). Give exactly one.
    step_size, schedule, power_t, step_every, gamma :
        eta_i (see :func:`layerprop.schedules.get_schedule`).
    l2 : float
        The book's lambda >= 0 (added as lam * w to the mean gradient).
    batch_size : int
        b rows per iteration (1 is the book); v_i is their (weighted) mean gradient.
    sampling : {"uniform", "epochs"} or None
        With replacement (the book; default with ``iterations``) or shuffled passes (default with ``epochs``).
    optimizer : {"sgd", "momentum", "nesterov", "adam"}
        with ``momentum``, ``beta_1``, ``beta_2``, ``epsilon``; ``regularize_bias`` (the book: True).
    validation : (X_val, Y_val), optional
    eval_every : int, optional
        Iterations between evaluations (default: about one epoch, at most 1000 evaluations).
    output : {"best", "last", "average"}, optional
        Default "best" with validation data, else "last".
    metric : "loss", "accuracy", callable or (callable, greater_is_better)
    early_stopping, patience, tol :
        Stop after ``patience`` evaluations without an improvement of more than ``tol``.
    clip_norm : float, optional
        Scale v_i down to this norm when it is larger.
    sample_weight : array of shape (n,), optional
    seed : int >= 0 or None
        Drives the sampling only (``layerprop.sampling``).
    engine : "auto" or an engine name
    checkpoint, checkpoint_every, resume :
        A folder, the iterations between checkpoints, and whether to continue from its checkpoint.
    callback : callable(row) -> bool or None
        Called with each history row; returning False stops training.
    progress, verbose :
        A progress bar (None: when stderr is a terminal) and a line per evaluation.
    distributed : bool
        Data-parallel training in a process started by ``torchrun`` (see ``docs/distributed.md``).
    device : None, "cpu", "cuda" or "cuda:N"
        Where to train. None: where ``net``'s arrays are. "cpu": a NumPy copy of ``net``; "cuda": a
        copy as torch tensors on the GPU (``layerprop.device.to_device``; TF32 is left as it is set).
        The data (X, Y, sample weights, validation) are moved there once; minibatches are sliced
        there. On a GPU, whole training steps run in CUDA graphs (engine "cuda_graph") unless
        clip_norm, output="average" or distributed ask for the step-by-step loop. The returned
        network stays on that device (``result.network.to(numpy)`` or ``to_device(..., "cpu")``
        brings it back; ``lp.save`` takes it as it is).

    Returns
    -------
    SGDResult

    Raises
    ------
    DivergenceError
        On a non-finite loss or weight; ``err.result`` holds the best finite weights.

    Examples
    --------
    >>> import numpy as np, layerprop as lp
    >>> net = lp.Network(lp.LayeredGraph.dense([2, 2, 1]), seed=0)
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]); Y = np.array([0, 1, 1, 0])
    >>> res = lp.sgd(net, X, Y, iterations=100, step_size=0.5, seed=0)
    >>> res.iterations, len(res.history) > 0
    (100, True)
    """
    args = dict(locals())
    args["schedule_kw"] = {k: args[k] for k in ("power_t", "step_every", "gamma") if
                           isinstance(schedule, str) and _uses(schedule, k)}
    if device is not None:  # move the network; _check then moves the data to it, once
        if not isinstance(net, Network):
            raise TypeError(f"net must be a layerprop Network; got {type(net).__name__}")
        from .device import to_device
        net = to_device(net, device, tf32=None)
        X, Y, args["sample_weight"] = (_to_host_unless_there(A, net) for A in (X, Y, sample_weight))
        if isinstance(validation, (tuple, list)) and len(validation) == 2:
            args["validation"] = tuple(_to_host_unless_there(A, net) for A in validation)
    args.pop("device")
    s = _check(net, X, Y, args)
    from .engines import select_engine
    eng = select_engine(net, batch_size=s.b, optimizer=s.optimizer, engine=engine)
    recipe = _recipe(s, args, eng.name)
    from ._progress import Progress
    dist = None
    if distributed:  # torchrun's processes share each batch (layerprop.distributed)
        from .distributed import join
        dist = join(s, net, recipe)
        recipe["world_size"] = dist.size
        net, s.metric, callback = dist.broadcast_network(net), dist.metric(s.metric), dist.callback(callback)
        progress, verbose = (progress, verbose) if dist.writer else (False, False)
    run = _Run(net.copy(), s, eng, recipe, callback, None, None if dist is None else dist.reduce)
    run.dist = dist
    if s.checkpoint is not None and dist is not None:
        dist.prepare_checkpoint_folder(run, s, resume, CHECKPOINT_NAME)
    elif s.checkpoint is not None:
        _prepare_checkpoint_folder(run, s, resume)
    run.progress = Progress(s.tau, initial=run.i, enabled=progress, verbose=verbose)
    run.t0 = time.perf_counter()
    try:
        _loop(run, s)
    finally:
        run.progress.close()
    return run.result()


def _to_host_unless_there(A, net):
    """``A`` as it is when it is NumPy, not an array, or already in ``net``'s namespace and on its
    device; else a NumPy copy (which ``_check`` then moves to ``net``'s device, once)."""
    from ._xp import is_array_api_obj
    if A is None or is_numpy_array(A) or not is_array_api_obj(A):
        return A
    w = net.W[0]
    if array_namespace(A) is array_namespace(w) and str(array_device(A)) == str(array_device(w)):
        return A
    return to_numpy(A)


def _uses(schedule, key):
    return (schedule, key) in {("invscaling", "power_t"), ("step", "step_every"), ("step", "gamma")}


def _prepare_checkpoint_folder(run, s, resume):
    """Create the folder, remove temporary files a killed write left, and (resume) load its checkpoint."""
    from . import io
    s.checkpoint.mkdir(parents=True, exist_ok=True)
    io.remove_stale_temp_files(s.checkpoint)
    path = s.checkpoint / CHECKPOINT_NAME
    if resume and path.exists():
        ck_net, arrays, info = io.load_checkpoint(path)
        _check_resume(run, ck_net, info, path)
        run.restore(ck_net, arrays, info)
