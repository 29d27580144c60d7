"""Which rows iteration i uses: a pure function of (seed, i), so that a resumed run, every
distributed rank and every engine draw the same examples (no generator state to save).

Iterations are counted from 1, as in the book. Two modes:

``"uniform"`` (the book: "sample (x, y) from the training distribution", i.e. uniformly with
replacement from the training set). Think of one endless stream of row indices; iteration i
takes positions (i-1)*b .. i*b-1 of it. The stream is cut into blocks of ``BLOCK`` positions,
block k being ``np.random.default_rng([seed, k]).integers(0, n, BLOCK)``.

``"epochs"`` (shuffled passes). Epoch e (from 0) is ``np.random.default_rng([seed, e]).permutation(n)``,
cut into ceil(n / b) consecutive batches; the last batch of an epoch keeps the n mod b rows left
(a partial batch), so every row is used exactly once per epoch.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

MODES = ("uniform", "epochs")
BLOCK = 4096  # positions of the uniform stream drawn at once (part of the definition: do not change)


@lru_cache(maxsize=8)
def _block(seed: int, k: int, n: int) -> np.ndarray:
    """Block k of the uniform stream: BLOCK row indices drawn with replacement from 0..n-1."""
    rows = np.random.default_rng([seed, k]).integers(0, n, BLOCK)
    rows.flags.writeable = False
    return rows


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the rows in epoch ``epoch`` (from 0)."""
    rows = np.random.default_rng([seed, epoch]).permutation(n)
    rows.flags.writeable = False
    return rows


def batches_per_epoch(n: int, b: int) -> int:
    """ceil(n / b): iterations per pass over n rows with batch size b."""
    return -(-n // b)


def _stream(seed, start, stop, n):
    """Positions start..stop-1 of the uniform stream."""
    k0, k1 = start // BLOCK, (stop - 1) // BLOCK
    parts = [_block(seed, k, n) for k in range(k0, k1 + 1)]
    flat = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return flat[start - k0 * BLOCK: stop - k0 * BLOCK]


def batch_rows(seed: int, i: int, n: int, b: int, mode: str = "uniform") -> np.ndarray:
    """The row indices of iteration i (from 1): b rows (fewer for an epoch's last partial batch)."""
    if mode == "uniform":
        return _stream(seed, (i - 1) * b, i * b, n)
    nb = batches_per_epoch(n, b)
    e, j = divmod(i - 1, nb)
    return _permutation(seed, e, n)[j * b: min((j + 1) * b, n)]


def rows_for_range(seed: int, start: int, stop: int, n: int, b: int, mode: str = "uniform") -> np.ndarray:
    """The rows of iterations start..stop-1, concatenated in order (1-D): with b = 1, one row per
    iteration, ``rows_for_range(...)[i - start] == batch_rows(seed, i, ...)[0]``."""
    if stop <= start:
        return np.zeros(0, dtype=np.int64)
    if mode == "uniform":
        return np.array(_stream(seed, (start - 1) * b, (stop - 1) * b, n))
    nb = batches_per_epoch(n, b)
    parts = []
    e0, e1 = (start - 1) // nb, (stop - 2) // nb
    for e in range(e0, e1 + 1):
        j_lo = (start - 1) - e * nb if e == e0 else 0
        j_hi = (stop - 1) - e * nb if e == e1 else nb
        parts.append(_permutation(seed, e, n)[j_lo * b: min(j_hi * b, n)])
    return np.concatenate(parts)


def examples_seen(i: int, n: int, b: int, mode: str = "uniform") -> int:
    """How many rows iterations 1..i used (the epoch count is this over n)."""
    if mode == "uniform":
        return i * b
    nb = batches_per_epoch(n, b)
    e, j = divmod(i, nb)
    return e * n + min(j * b, n)
