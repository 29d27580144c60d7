"""Synchronous data-parallel SGD on torch.distributed (issue 9): P processes train one network.

The book's step w <- w - eta_i (v_i + lam w) needs v_i, the mean gradient over the rows of
iteration i. Every process (rank r of P) draws the same rows, ``sampling.batch_rows(seed, i)``
(a pure function of the seed and i), keeps its own contiguous part of them (the parts differ by
at most one row) and computes the sums over that part. One all-reduce adds the parts up, and
``sgd.combine`` divides by the total weight:

    v_i = (sum_r sum_{j in part r} r_j grad_j) / (sum_r sum_{j in part r} r_j)

So every rank holds the same sums, applies the same update to the same weights and keeps the
same optimizer state: the run is the single-process run with batch size b, up to the order of
summation. The figures that decide something (validation loss and metric, the early-stopping
score, a callback's stop) are all-reduced too, so every rank decides the same at the same step.
Rank 0 alone writes checkpoints and models.

torch.distributed does all the communication (gloo on CPUs, NCCL for CUDA tensors); ``torchrun``
or :func:`launch` (torch's elastic launcher) starts the processes. This is the only module that
names torch.distributed; ``lp.sgd(..., distributed=True)`` calls :func:`join`.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import json
import logging
import math
import multiprocessing
import os
import uuid
import warnings

import numpy as np

from ._xp import is_numpy_array, to_numpy

__all__ = ["DistributedError", "JoinError", "WorkerLostError", "Group", "group", "join", "launch", "part",
           "preload", "TORCHRUN_ENV"]

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")  # set by torchrun for each worker
TIMEOUT = datetime.timedelta(minutes=5)  # a collective that waits longer fails: a lost peer never hangs a run
# forkserver: each worker is forked from a server process that multiprocessing starts fresh (one
# thread) and that has imported PRELOAD once, so workers start in ~0.1 s instead of importing torch
# again (~2-5 s, spawn). Forking the caller instead (fork) copies the locks its other threads hold
# at that moment: a worker of a forked launch once hung for good in getaddrinfo on the resolver's
# lock (benchmarks/probe_gloo_stray.py, with the launcher's store busy).
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
PRELOAD = ("torch.distributed", "layerprop.distributed", "layerprop.sgd", "layerprop.engines")
_preload_set = False  # preload() was called: the forkserver's list is set
JOIN_TRIES = 3  # launch() starts its workers again when they could not connect (JoinError), this often
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class DistributedError(RuntimeError):
    """A distributed run cannot start or go on (no PyTorch, not started by torchrun, ...)."""


class JoinError(DistributedError):
    """The process group could not be set up: gloo's connections between the processes failed.
    On one machine this is transient: a stray connection to a gloo port while the processes
    connect (a port scanner, another program's reconnecting client) makes gloo give up."""


class WorkerLostError(DistributedError):
    """A process of the run stopped (killed, crashed or unreachable); ``ranks`` names the lost ones
    where they are known."""

    def __init__(self, message, ranks=()):
        super().__init__(message)
        self.ranks = tuple(ranks)

    def __reduce__(self):
        return type(self), (str(self), self.ranks)


def _torch():
    """(torch, torch.distributed), or a DistributedError that says how to install them."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        raise DistributedError("distributed training needs PyTorch (torch.distributed): "
                               "pip install 'layerprop[dist]'") from None
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed")
    return torch, dist


def part(n: int, P: int, r: int) -> slice:
    """The rows of rank r when n rows are split among P ranks: contiguous, sizes n//P or n//P + 1."""
    q, m = divmod(n, P)
    lo = r * q + min(r, m)
    return slice(lo, lo + q + (r < m))


def _shaped_views(flat, like, start=0) -> list:
    """Views of the 1-D ``flat`` (NumPy or torch) from element ``start`` on, one after another,
    shaped like the arrays of ``like`` (None where an array is None)."""
    views, k = [], start
    for a in like:
        if a is None:
            views.append(None)
            continue
        m = math.prod(a.shape)
        views.append(flat[k:k + m].reshape(tuple(a.shape)))
        k += m
    return views


def _one_line(e) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class Group:
    """This process's place in a distributed run (rank of size) and the collectives ``lp.sgd`` uses.

    Build it with :func:`join`. Every collective goes through :meth:`_collective`, which turns a
    peer's loss (a closed connection, a timeout) into :class:`WorkerLostError`.
    """

    def __init__(self, rank: int, size: int, device=None):
        self.torch, self.dist = _torch()
        self.rank, self.size = int(rank), int(size)
        self.device = device or "cpu"  # where the communication buffers live (cuda for NCCL)
        self.totals = (0.0, 0.0)  # the last step's all-reduced loss sum and weight sum

    def __repr__(self):
        return f"Group(rank={self.rank}, size={self.size}, backend={self.dist.get_backend()!r})"

    @property
    def writer(self) -> bool:
        """True on rank 0, the one process that writes files."""
        return self.rank == 0

    # -- the step ---------------------------------------------------------------------------
    def share(self, rows):
        """This rank's part of a global batch's rows."""
        return rows[part(len(rows), self.size, self.rank)]

    def reduce(self, loss_sum, weight_sum, gW, gb):
        """The ``reduce`` of ``sgd.combine``: one all-reduce (sum over ranks) of a step's loss sum,
        weight sum and gradient sums, packed in one buffer of the gradient's dtype.

        The buffer is allocated once per run (per layout of the arrays) and reused: each step copies
        the sums into it (one pass, no ``cat``, no new pages), all-reduces it in place and returns
        views of it. So the returned gradient sums are overwritten by the next call (``sgd`` uses
        them within the step: ``combine`` or the in-place ``step_sums``)."""
        arrays = list(gW) + list(gb)
        flat, views = self._step_buffer(arrays)
        for v, a in zip(views, arrays):
            if v is not None:
                v[...] = a  # np.copyto / Tensor.copy_: the same values, in the buffer's dtype
        flat[0], flat[1] = loss_sum, weight_sum
        self._collective("the all-reduce of a step's gradient", self.dist.all_reduce, self._buf)
        self.totals = (float(flat[0]), float(flat[1]))
        return self.totals[0], self.totals[1], views[:len(gW)], views[len(gW):]

    def _step_buffer(self, arrays):
        """(the flat buffer, views of it shaped like ``arrays``) for this layout, made on the first
        call (elements 0 and 1: the loss and weight sums): a torch tensor (what the all-reduce sees,
        ``self._buf``) and, for NumPy sums, a NumPy view of the same memory (``torch.from_numpy``),
        so filling and reading it copies nothing more."""
        key = tuple(None if a is None else (tuple(a.shape), str(a.dtype), is_numpy_array(a),
                                            None if is_numpy_array(a) else str(a.device)) for a in arrays)
        if getattr(self, "_layout", None) != key:
            live = [a for a in arrays if a is not None]
            n = 2 + sum(math.prod(a.shape) for a in live)  # the loss and weight sums, then the gradient's
            if is_numpy_array(live[0]):
                flat = np.zeros(n, dtype=live[0].dtype)
                self._buf = self.torch.from_numpy(flat)
            else:
                self._buf = flat = self.torch.zeros(n, dtype=live[0].dtype, device=live[0].device)
            self._layout, self._flat_views = key, (flat, _shaped_views(flat, arrays, start=2))
        return self._flat_views

    def _flat(self, a):
        t = self.torch.from_numpy(np.ascontiguousarray(a)) if is_numpy_array(a) else a
        return t.reshape(-1)

    def _unflat(self, buf, like, copy=False):
        """Pieces of the 1-D ``buf`` shaped (and typed: NumPy or torch) like the arrays of ``like``."""
        out = []
        for a, piece in zip(like, _shaped_views(buf, like)):
            if a is None:
                out.append(None)
            elif is_numpy_array(a):
                piece = piece.numpy()
                out.append(piece.copy() if copy else piece)
            else:
                out.append(piece.clone() if copy else piece)
        return out

    # -- figures every rank agrees on ------------------------------------------------------------
    def all_sum(self, values, what="an all-reduce of evaluation figures"):
        """Sums over ranks of a few float64 numbers."""
        t = self.torch.tensor([float(v) for v in values], dtype=self.torch.float64, device=self.device)
        self._collective(what, self.dist.all_reduce, t)
        return t.tolist()

    def broadcast_float(self, value, what="a broadcast of an evaluation figure"):
        """Rank 0's value of a float, on every rank."""
        t = self.torch.tensor([float(value)], dtype=self.torch.float64, device=self.device)
        self._collective(what, self.dist.broadcast, t, 0)
        return float(t[0])

    def mean(self, fn, net, X, Y):
        """``fn(net, X, Y)``, a mean over rows, computed on this rank's part of the rows and all-reduced."""
        rows = part(X.shape[0], self.size, self.rank)
        n = rows.stop - rows.start
        local = fn(net, X[rows], Y[rows]) * n if n else 0.0
        total, count = self.all_sum([local, n], "the all-reduce of a validation figure")
        return total / count

    def mean_loss(self, net, X, Y):
        """The mean loss over the rows of X, Y (every rank evaluates its part)."""
        from .sgd import _mean_loss
        return self.mean(_mean_loss, net, X, Y)

    def metric(self, metric):
        """An ``sgd`` metric (name, fn, greater_is_better) whose value is the same on every rank:
        the loss and the accuracy (means over rows) are all-reduced from each rank's part; a custom
        metric is computed on every rank and rank 0's value is used."""
        from .sgd import _accuracy, _mean_loss
        name, fn, greater = metric
        if fn is _mean_loss or fn is _accuracy:
            return name, (lambda net, X, Y: self.mean(fn, net, X, Y)), greater
        return name, (lambda net, X, Y: self.broadcast_float(fn(net, X, Y))), greater

    def callback(self, callback):
        """``callback`` called on every rank; training stops on every rank when one of them returns False."""
        if callback is None:
            return None

        def agreed(row):
            stop = callback(row) is False
            return False if self.all_sum([stop], "the all-reduce of a callback's decision")[0] > 0 else None
        return agreed

    # -- start -----------------------------------------------------------------------------------
    def broadcast_network(self, net):
        """A copy of ``net`` holding rank 0's weights (every rank starts from the same w^(1))."""
        new = net.copy()
        arrays = list(new.W) + list(new.b)
        buf = self.torch.cat([self._flat(a) for a in arrays if a is not None]).contiguous()
        self._collective("the broadcast of the initial weights", self.dist.broadcast, buf, 0)
        out = self._unflat(buf, arrays, copy=True)
        new.replace_params(out[:len(new.W)], out[len(new.W):])
        return new

    def check_same(self, fingerprint: dict, who="sgd"):
        """Every rank must pass the same ``fingerprint`` (network, data, settings), else a
        ValueError naming the ranks and keys that differ, raised on every rank."""
        every = [None] * self.size
        self._collective("the start-up check", self.dist.all_gather_object, every, fingerprint)
        bad = {r: sorted(k for k in set(f) | set(every[0]) if f.get(k) != every[0].get(k))
               for r, f in enumerate(every) if f != every[0]}
        if bad:
            what = "; ".join(f"rank {r}: {', '.join(keys)}" for r, keys in bad.items())
            raise ValueError(f"distributed=True: every process must call {who} with the same network, data and "
                             f"settings; these differ from rank 0's ({what})")

    def same_random_state(self, random_state):
        """A copy of rank 0's NumPy RandomState on every rank (so that every rank draws the same)."""
        box = [random_state.get_state() if self.writer else None]
        self._collective("the broadcast of the random state", self.dist.broadcast_object_list, box, 0)
        rs = np.random.RandomState()
        rs.set_state(box[0])
        return rs

    def prepare_checkpoint_folder(self, run, s, resume, name):
        """Rank 0 creates and cleans the folder and (resume) reads the checkpoint; every rank gets
        rank 0's copy, so the other ranks need not see the folder (multi-node without a shared disk)."""
        from . import io
        from .sgd import _check_resume
        path = s.checkpoint / name
        loaded = error = None
        if self.writer:
            try:
                s.checkpoint.mkdir(parents=True, exist_ok=True)
                io.remove_stale_temp_files(s.checkpoint)
                if resume and path.exists():
                    loaded = io.load_checkpoint(path)
            except Exception as e:  # noqa: BLE001 - raised on every rank below
                error = e
        box = [(loaded, error)]
        self._collective("the broadcast of the checkpoint", self.dist.broadcast_object_list, box, 0)
        loaded, error = box[0]
        if error is not None:
            raise error
        if loaded is None:
            return
        ck_net, arrays, info = loaded
        had = int(info.get("recipe", {}).get("world_size", 1))
        if had != self.size:
            raise ValueError(f"resume=True: the checkpoint {path} was written by a run of {had} process"
                             f"{'es' if had != 1 else ''}; this run has {self.size}. Resume with the same number "
                             f"of processes (the sums of a step are split among them)")
        _check_resume(run, ck_net, info, path)
        run.restore(ck_net, arrays, info)

    # -- communication -----------------------------------------------------------------------------
    def _collective(self, what, fn, *args):
        try:
            return fn(*args)
        except RuntimeError as e:  # DistBackendError, DistNetworkError, a timeout: a peer is gone
            raise WorkerLostError(f"lost contact with the other processes during {what} (this is rank "
                                  f"{self.rank} of {self.size}): {_one_line(e)}") from None


def _network_fingerprint(net) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([list(net.k), list(net.activation_names), net.loss_name, str(net.dtype)]).encode())
    for m in list(net.masks) + list(net.bias_masks or []):
        if m is not None:
            h.update(np.ascontiguousarray(to_numpy(m)).tobytes())
    return h.hexdigest()[:32]


# -- joining a run -------------------------------------------------------------------------------
def group(cuda=False) -> Group:
    """This process's :class:`Group`: the default process group if the caller has set one up,
    else one set up from torchrun's environment (gloo; NCCL when ``cuda``)."""
    torch, dist = _torch()
    if not dist.is_initialized():
        missing = [k for k in TORCHRUN_ENV if k not in os.environ]
        if missing:
            raise DistributedError(
                f"distributed=True: this process was not started by torchrun (the environment has no "
                f"{', '.join(missing)}); start it with `torchrun --nproc-per-node N script.py`, or call "
                f"torch.distributed.init_process_group first")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
        except RuntimeError as e:
            raise JoinError(f"distributed=True: could not join the process group: {_one_line(e)}") from None
        atexit.register(_leave)  # else gloo's threads may abort the interpreter's exit
    _pin_compute_thread()
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    return Group(dist.get_rank(), dist.get_world_size(), device)


WORKER_NICE = 10  # launch()'s default niceness for a pinned worker's computing thread
_PIN_CORES = None  # set by a launch() worker of 1 thread: the core its compute thread keeps to
_PIN_NICE = 0  # and the niceness it then takes (launch's ``nice``)


def _pin_compute_thread():
    """In a :func:`launch` worker of one thread with a core of its own: keep this (the calling,
    computing) thread on that core, once the process group is up, its niceness raised by ``_PIN_NICE``.
    gloo's threads, started with the process group, keep every core and niceness 0, so they run on
    whichever core is free, and when one wakes on a core where a computing thread runs it takes
    the core at once instead of at the next scheduler tick (measured: docs/distributed.md)."""
    global _PIN_CORES
    if _PIN_CORES is not None:
        try:
            os.sched_setaffinity(0, _PIN_CORES)  # 0: the calling thread only (Linux)
            if _PIN_NICE:  # Linux: the calling thread's niceness, raised by _PIN_NICE
                os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + _PIN_NICE))
        except OSError:  # pragma: no cover - a cgroup that forbids it: run unpinned
            pass
        _PIN_CORES = None


def _leave():
    _, dist = _torch()
    if dist.is_initialized():
        dist.destroy_process_group()


def join(s, net, recipe) -> Group:
    """The :class:`Group` of ``lp.sgd(..., distributed=True)``: checks that every rank has the same
    network, data and settings (``s``: sgd's checked arguments) and gets rows of every batch."""
    g = group(cuda=not is_numpy_array(net.W[0]) and getattr(net.W[0], "is_cuda", False))
    if s.b < g.size:
        raise ValueError(f"batch_size={s.b} is smaller than the number of processes ({g.size}): every "
                         f"process needs rows of every batch")
    fingerprint = {k: v for k, v in recipe.items() if k != "engine"}
    fingerprint.update(data=s.data_hash, network=_network_fingerprint(net))
    g.check_same(fingerprint)
    return g


# -- launching local workers -------------------------------------------------------------------------
class _Failed:
    """What a worker returns instead of raising (no traceback on stderr): the exception, pickled
    when it can be, else its type name and message."""

    def __init__(self, exc):
        import pickle
        try:
            self.exc = pickle.loads(pickle.dumps(exc))
        except Exception:  # noqa: BLE001
            self.exc = DistributedError(f"{type(exc).__name__}: {_one_line(exc)}")


def _worker(fn, args, threads, nice=0):
    """One local worker: ``fn(*args)`` with ``threads`` compute threads; exceptions are returned."""
    global _PIN_CORES, _PIN_NICE
    torch, _ = _torch()
    torch.set_num_threads(threads)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
    local_rank, local_size = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if threads == 1 and local_size > 1 and local_size <= len(cores):
        _PIN_CORES = {cores[local_rank]}  # applied by group(), after gloo has started its threads
        _PIN_NICE = nice
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        threadpool_limits = contextlib.nullcontext
    try:
        with threadpool_limits(threads):
            return fn(*args)
    except Exception as e:  # noqa: BLE001 - the launcher re-raises it in the parent
        return _Failed(e)
    finally:
        _, dist = _torch()
        if dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def _launch_env(threads):
    """Thread counts for the workers' BLAS (read when they start) and a quiet elastic agent."""
    old_env = {k: os.environ.get(k) for k in _THREAD_ENV}
    loggers = [logging.getLogger(n) for n in ("torch.distributed.elastic", "torch.distributed.launcher",
                                              "torch.multiprocessing")]
    old_levels = [lg.level for lg in loggers]
    os.environ.update({k: str(threads) for k in _THREAD_ENV})
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for lg, level in zip(loggers, old_levels):
            lg.setLevel(level)


def launch(nproc: int, fn, args=(), *, threads: int = 1, nice: int = WORKER_NICE) -> list:
    """Run ``fn(*args)`` in ``nproc`` local worker processes, as ``torchrun --standalone`` does
    (torch.distributed's elastic launcher; the workers find torchrun's environment, so
    ``lp.sgd(..., distributed=True)`` works in them), and return their results by rank.

    ``fn`` must be importable, and a script that calls ``launch`` needs ``if __name__ ==
    "__main__":`` (the workers, forked by multiprocessing's forkserver or spawned, import the
    script as their main module; see START_METHOD). ``threads``
    compute threads per worker. With one thread each and a core each, a worker's computing
    thread is pinned to its core and its niceness raised by ``nice`` (0-19; gloo's communication
    threads keep theirs), so that the all-reduce's threads get a core the moment they wake: on 2
    cores this made a 2-process step ~10% faster (docs/distributed.md). The workers then also
    yield to other programs on a busy machine; ``nice=0`` keeps their priority.
    An exception in a worker is raised here (a real error before a lost-contact one); a worker
    that dies (a signal, ``os._exit``) stops the others and raises :class:`WorkerLostError`
    naming its rank. Workers that could not set up their process group (:class:`JoinError`: gloo
    gives up when a stray connection reaches its port while the workers connect) are started
    again, with a warning, up to ``JOIN_TRIES`` times in all.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an integer >= 1; got {nproc!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1; got {threads!r}")
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
        raise ValueError(f"nice must be an integer from 0 to 19; got {nice!r}")
    _torch()
    if not _preload_set:
        preload()
    for attempt in range(1, JOIN_TRIES + 1):
        results = _launch_once(nproc, fn, args, threads, nice)
        failed = [r.exc for r in results if isinstance(r, _Failed)]
        if not failed:
            return results
        real = [e for e in failed if not isinstance(e, WorkerLostError)]
        if attempt < JOIN_TRIES and real and all(isinstance(e, JoinError) for e in real):
            # no step was taken: every collective needs every rank, and one never joined
            warnings.warn(f"launch: the {nproc} processes could not connect ({_one_line(real[0])}); "
                          f"starting them again (try {attempt + 1} of {JOIN_TRIES})", RuntimeWarning, stacklevel=2)
            continue
        raise (real or failed)[0]


def preload(*modules):
    """Have the forkserver import ``modules`` (and PRELOAD) before it forks the first worker:
    they are imported once, not in every worker. No effect once the server has started."""
    global _preload_set
    if START_METHOD == "forkserver":
        multiprocessing.get_context("forkserver").set_forkserver_preload(["__main__", *PRELOAD, *modules])
    _preload_set = True


def _launch_once(nproc, fn, args, threads, nice) -> list:
    """One start of the workers (one rendezvous): their results by rank."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"layerprop-{uuid.uuid4().hex[:12]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method=START_METHOD)
    with _launch_env(threads):
        try:
            out = elastic_launch(config, _worker)(fn, args, threads, nice)
        except ChildFailedError as e:
            raise WorkerLostError(_lost_message(e.failures, nproc), ranks=sorted(e.failures)) from None
    return [out[r] for r in range(nproc)]


def _lost_message(failures, nproc) -> str:
    """'worker rank 1 of 2 was lost (killed by SIGKILL)' (or several workers)."""
    parts = []
    for rank in sorted(failures):
        f = failures[rank]
        how = f"killed by {f.signal_name()}" if f.exitcode < 0 else f"exited with code {f.exitcode}"
        parts.append(f"rank {rank} ({how})")
    if len(parts) == 1:
        return f"worker {parts[0].replace(' (', f' of {nproc} was lost (', 1)}"
    return f"workers {', '.join(parts)} of {nproc} were lost"
