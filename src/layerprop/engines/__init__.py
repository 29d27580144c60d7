"""Engines: interchangeable ways to compute a training step's gradient, each tested to give the
reference core's numbers. ``select_engine`` is the one place where an engine is chosen.

The contract every engine keeps::

    engine.name: str
    engine.gradient_sums(net, X, Y, r) -> (loss_sum, weight_sum, gW, gb)
        # sums over the rows of the batch (weighted by r, or 1 each when r is None), masked:
        # phantom entries exactly 0. X, Y are already in the network's namespace and dtype.
        # The arrays returned may be buffers the engine reuses: use them before the next call.

An engine may also offer ``run_book_sgd(net, X, Y, rows, etas, lam, regularize_bias)``: the
book's update with batch size 1 for ``len(rows)`` iterations, in place, returning the loss sum;
and ``run_minibatch_sgd`` (same arguments, ``rows`` an (m, b) array, and ``opt``, an update rule
of ``optim``) with ``minibatch_ok(net, b, optimizer)``.

The engines:

=============  ==========================================================================
``reference``  the readable core (``backprop.py``), any array namespace (NumPy, torch, CuPy)
``numpy``      in-place NumPy float32/float64 with preallocated buffers (``numpy_fast.py``);
               its ``run_book_sgd`` is a NumPy loop (the fallback when numba is missing)
``numba``      the NumPy engine plus the book's SGD as compiled loops: batch 1
               (``numba_single.py``) and float32 minibatches on all cores with the book's
               update, momentum, nesterov or adam (``numba_batch.py``);
               needs the ``fast`` extra
=============  ==========================================================================

A GPU engine (torch/CUDA, whole steps captured in CUDA graphs) slots in here the same way: one
more entry in ``ENGINES`` and one more rule in ``select_engine`` for torch arrays on a CUDA device.
"""

from __future__ import annotations

from . import cuda_graph, numba_single, numpy_fast, torch_engine
from .cuda_graph import CudaGraphEngine
from .numba_single import NumbaEngine
from .numpy_fast import NumpyEngine
from .reference import ReferenceEngine
from .torch_engine import TorchEngine

ENGINES = {"reference": ReferenceEngine, "numpy": NumpyEngine, "numba": NumbaEngine,
           "torch": TorchEngine, "cuda_graph": CudaGraphEngine}
_SUPPORTS = {"reference": lambda net: True, "numpy": numpy_fast.supports, "numba": numba_single.supports,
             "torch": torch_engine.supports, "cuda_graph": cuda_graph.supports}


def select_engine(net, *, batch_size=1, optimizer="sgd", engine="auto"):
    """The engine for this network and step: ``engine="reference"`` forces the readable core.

    ``"auto"`` picks the compiled loop for the book's SGD with batch size 1 (when numba is
    installed), the in-place NumPy engine for other NumPy float32/float64 networks, and the
    reference for anything else (torch or CuPy arrays, custom activations).
    """
    if engine != "auto":
        if engine not in ENGINES:
            raise ValueError(f"engine={engine!r} is not known; choose 'auto' or one of {sorted(ENGINES)}")
        if engine == "numba" and not numba_single.available():
            raise ValueError("engine='numba' needs numba (pip install 'layerprop[fast]'); "
                             "engine='numpy' runs the same algorithm without it")
        if not _SUPPORTS[engine](net):
            raise ValueError(f"engine={engine!r} cannot run this network ({net!r}): it needs NumPy "
                             f"float32/float64 weights and built-in activations; use engine='reference'")
        return ENGINES[engine]()
    if torch_engine.supports(net):  # torch tensors: explicit tensor math; on CUDA, graph-captured steps
        return CudaGraphEngine() if net.W[0].is_cuda else TorchEngine()
    if not numpy_fast.supports(net):
        return ReferenceEngine()
    if numba_single.available() and numba_single.supports(net) and (
            (batch_size == 1 and optimizer == "sgd") or NumbaEngine().minibatch_ok(net, batch_size, optimizer)):
        return NumbaEngine()
    return NumpyEngine()
