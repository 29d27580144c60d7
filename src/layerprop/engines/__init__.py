"""Engines: interchangeable ways to compute a training step's gradient, each tested to give the
reference core's numbers. ``select_engine`` is the one place where an engine is chosen.

The contract every engine keeps::

    engine.name: str
    engine.gradient_sums(net, X, Y, r) -> (loss_sum, weight_sum, gW, gb)
        # sums over the rows of the batch (weighted by r, or 1 each when r is None), masked:
        # phantom entries exactly 0. X, Y are already in the network's namespace and dtype.
        # The arrays returned may be buffers the engine reuses: use them before the next call.

An engine may also offer ``run_book_sgd(net, X, Y, rows, etas, lam, regularize_bias)``: the
book's update with batch size 1 for ``len(rows)`` iterations, in place, returning the loss sum.
"""

from __future__ import annotations

from .reference import ReferenceEngine

ENGINES = {"reference": ReferenceEngine}


def select_engine(net, *, batch_size=1, optimizer="sgd", engine="auto"):
    """The engine for this network and step: ``engine="reference"`` forces the readable core."""
    if engine != "auto":
        if engine not in ENGINES:
            raise ValueError(f"engine={engine!r} is not known; choose 'auto' or one of {sorted(ENGINES)}")
        return ENGINES[engine]()
    return ReferenceEngine()
