"""The layered graph (V, E) of SSBD 20.6: layers V_0..V_T, sizes k_t, and the edge set E.

E between V_t and V_{t+1} is a boolean mask of shape (k_{t+1}, k_t): ``masks[t][i, j]`` is True
when the edge from v_{t,j} to v_{t+1,i} is in E, False for a "phantom" edge of weight 0.
The book's constant neuron of layer t (the bias) is kept out of k_t: its edges into layer t+1
are ``bias_masks[t]`` of shape (k_{t+1},), or ``None`` for a graph without bias.

An edge is named ``(t, i, j)``: from v_{t,j} to v_{t+1,i}. A bias edge is ``(t, i, k_t)``, the
index the constant neuron would have in layer t.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import numpy as np


class LayeredGraph:
    """Layers V_0..V_T with sizes k_t, edge masks E_t and optional bias (constant-neuron) edges."""

    def __init__(self, sizes: Sequence[int], masks: Sequence[np.ndarray], bias_masks=None):
        self.sizes = tuple(int(k) for k in sizes)
        self.masks = [np.array(m, dtype=bool) for m in masks]
        self.bias_masks = None if bias_masks is None else [np.array(m, dtype=bool) for m in bias_masks]
        self._validate()

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def dense(cls, sizes: Sequence[int], bias: bool = True) -> "LayeredGraph":
        """Every edge between consecutive layers: E = union_t V_t x V_{t+1}."""
        sizes = _check_sizes(sizes)
        masks = [np.ones((sizes[t + 1], sizes[t]), dtype=bool) for t in range(len(sizes) - 1)]
        return cls(sizes, masks, _bias_masks(bias, sizes))

    @classmethod
    def from_masks(cls, masks: Sequence, bias=True) -> "LayeredGraph":
        """From edge masks, one boolean array of shape (k_{t+1}, k_t) per t."""
        if isinstance(masks, np.ndarray) or not isinstance(masks, (list, tuple)) or not masks:
            raise TypeError(f"masks must be a non-empty list of 2-D boolean arrays; got {type(masks).__name__}")
        masks = [_check_mask(m, t) for t, m in enumerate(masks)]
        sizes = [masks[0].shape[1]] + [m.shape[0] for m in masks]
        for t in range(1, len(masks)):
            if masks[t].shape[1] != masks[t - 1].shape[0]:
                raise ValueError(
                    f"masks[{t}] has shape {masks[t].shape}, but layer {t} has "
                    f"{masks[t - 1].shape[0]} neurons (from masks[{t - 1}].shape = {masks[t - 1].shape})"
                )
        sizes = _check_sizes(sizes)
        return cls(sizes, masks, _bias_masks(bias, sizes))

    @classmethod
    def from_edges(cls, sizes: Sequence[int], edges: Iterable, bias=True) -> "LayeredGraph":
        """From an edge list of triples (t, i, j) = the edge from v_{t,j} to v_{t+1,i}.

        With ``bias=True`` the bias edges are all present; pass ``bias="edges"`` to take them from
        the list too, written (t, i, k_t) (the constant neuron's index).
        """
        sizes = _check_sizes(sizes)
        T = len(sizes) - 1
        masks = [np.zeros((sizes[t + 1], sizes[t]), dtype=bool) for t in range(T)]
        from_list = isinstance(bias, str) and bias == "edges"
        bias_masks = [np.zeros(sizes[t + 1], dtype=bool) for t in range(T)] if from_list else None
        for n, edge in enumerate(edges):
            t, i, j = _check_edge(edge, n, sizes, allow_bias=from_list)
            target = bias_masks[t] if j == sizes[t] else masks[t]
            key = i if j == sizes[t] else (i, j)
            if target[key]:
                raise ValueError(f"edges[{n}] = {tuple(edge)} is a duplicate edge")
            target[key] = True
        return cls(sizes, masks, bias_masks if from_list else _bias_masks(bias, sizes))

    @classmethod
    def random(cls, sizes: Sequence[int], density: float, seed=None, bias=True) -> "LayeredGraph":
        """Each edge kept independently with probability ``density`` (seeded); every neuron keeps
        at least one incoming and one outgoing edge so that no neuron is cut off."""
        sizes = _check_sizes(sizes)
        if not 0 < density <= 1:
            raise ValueError(f"density must be in (0, 1]; got {density!r}")
        rng = _graph_rng(seed)
        masks = []
        for t in range(len(sizes) - 1):
            m = rng.random((sizes[t + 1], sizes[t])) < density
            m[np.arange(sizes[t + 1]), rng.integers(0, sizes[t], sizes[t + 1])] = True
            m[rng.integers(0, sizes[t + 1], sizes[t]), np.arange(sizes[t])] = True
            masks.append(m)
        return cls(sizes, masks, _bias_masks(bias, sizes))

    @classmethod
    def banded(cls, sizes: Sequence[int], width: int, bias=True) -> "LayeredGraph":
        """Local connectivity: v_{t+1,i} sees the v_{t,j} whose relative position is within
        ``width`` of its own (positions scaled to [0, 1] so layers of different sizes line up)."""
        sizes = _check_sizes(sizes)
        if not isinstance(width, (int, np.integer)) or width < 0:
            raise ValueError(f"width must be an integer >= 0; got {width!r}")
        masks = []
        for t in range(len(sizes) - 1):
            centre = np.round(np.arange(sizes[t + 1]) * (sizes[t] - 1) / max(sizes[t + 1] - 1, 1))
            masks.append(np.abs(np.arange(sizes[t])[None, :] - centre[:, None]) <= width)
        return cls(sizes, masks, _bias_masks(bias, sizes))

    # -- queries ------------------------------------------------------------------------------
    @property
    def T(self) -> int:
        """The depth T (number of weight layers)."""
        return len(self.sizes) - 1

    @property
    def k(self) -> tuple:
        """Layer sizes k_0..k_T (real neurons, without the constant neuron)."""
        return self.sizes

    @property
    def bias(self) -> bool:
        """Whether the graph has constant neurons (bias edges)."""
        return self.bias_masks is not None

    @property
    def num_vertices(self) -> int:
        """|V|: all neurons, counting one constant neuron per non-output layer when there is bias."""
        return sum(self.sizes) + (self.T if self.bias else 0)

    def num_edges(self, include_bias: bool = True) -> int:
        """|E|: the real edges, with or without the bias (constant-neuron) edges."""
        n = sum(int(m.sum()) for m in self.masks)
        if include_bias and self.bias:
            n += sum(int(m.sum()) for m in self.bias_masks)
        return n

    def edges(self, include_bias: bool = True) -> list:
        """The edge list [(t, i, j), ...] in (t, i, j) order; bias edges as (t, i, k_t)."""
        out = []
        for t, m in enumerate(self.masks):
            rows = [(t, int(i), int(j)) for i, j in zip(*np.nonzero(m))]
            if include_bias and self.bias:
                rows += [(t, int(i), self.sizes[t]) for i in np.nonzero(self.bias_masks[t])[0]]
            out += sorted(rows)
        return out

    def dead_neurons(self) -> list:
        """Hidden and input neurons (t, j) with no directed path to any output neuron."""
        alive = np.ones(self.sizes[-1], dtype=bool)
        dead = []
        for t in range(self.T - 1, -1, -1):
            alive = (self.masks[t] & alive[:, None]).any(axis=0)
            dead += [(t, int(j)) for j in np.nonzero(~alive)[0]]
        return sorted(dead)

    def __eq__(self, other):
        if not isinstance(other, LayeredGraph) or self.sizes != other.sizes or self.bias != other.bias:
            return False
        same = all(np.array_equal(a, b) for a, b in zip(self.masks, other.masks))
        return same and (not self.bias or all(np.array_equal(a, b) for a, b in zip(self.bias_masks, other.bias_masks)))

    def __repr__(self):
        sizes = "-".join(map(str, self.sizes))
        return f"LayeredGraph({sizes}, |E|={self.num_edges()}, bias={self.bias})"

    # -- validation ---------------------------------------------------------------------------
    def _validate(self):
        sizes = _check_sizes(self.sizes)
        if len(self.masks) != len(sizes) - 1:
            raise ValueError(f"{len(sizes)} layer sizes need {len(sizes) - 1} masks; got {len(self.masks)}")
        for t, m in enumerate(self.masks):
            if m.shape != (sizes[t + 1], sizes[t]):
                raise ValueError(f"masks[{t}] has shape {m.shape}; expected (k[{t + 1}], k[{t}]) = {(sizes[t + 1], sizes[t])}")
        if self.bias_masks is not None:
            for t, m in enumerate(self.bias_masks):
                if m.shape != (sizes[t + 1],):
                    raise ValueError(f"bias_masks[{t}] has shape {m.shape}; expected ({sizes[t + 1]},)")
        dead = self.dead_neurons()
        if dead:
            shown = ", ".join(f"v_{{{t},{j}}}" for t, j in dead[:5]) + (" ..." if len(dead) > 5 else "")
            warnings.warn(f"{len(dead)} neuron(s) have no path to the output: {shown}", stacklevel=3)


def _graph_rng(seed):
    """The generator for edge sets: an int seed is mixed with a tag, so that
    ``LayeredGraph.random(..., seed=s)`` and ``Network(..., seed=s)`` draw independent streams
    (with one stream, the kept edges u < density would all start with negative weights)."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence, np.random.BitGenerator)):
        return np.random.default_rng(seed)
    return np.random.default_rng([*np.atleast_1d(np.asarray(seed, dtype=np.int64)).tolist(), 0x45])  # 0x45: "E"


def _check_sizes(sizes) -> tuple:
    """Sizes k_0..k_T: at least two layers, each a positive integer."""
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer sizes k_0..k_T; got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes must give at least an input and an output layer (T >= 1); got {sizes!r}")
    for t, k in enumerate(sizes):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"sizes[{t}] must be an integer; got {k!r}")
        if k < 1:
            raise ValueError(f"sizes[{t}] = {k}: layer {t} is empty; every layer needs at least one neuron")
    return tuple(int(k) for k in sizes)


def _check_mask(m, t) -> np.ndarray:
    a = np.asarray(m)
    if a.ndim != 2:
        raise ValueError(f"masks[{t}] must be 2-D (k[{t + 1}], k[{t}]); got shape {a.shape}")
    if a.dtype != bool:
        if not np.issubdtype(a.dtype, np.number) or not np.isin(a, (0, 1)).all():
            raise ValueError(f"masks[{t}] must be boolean (or 0/1); got dtype {a.dtype}")
        a = a.astype(bool)
    return a


def _check_edge(edge, n, sizes, allow_bias) -> tuple:
    try:
        t, i, j = (int(v) for v in edge)
    except (TypeError, ValueError):
        raise ValueError(f"edges[{n}] = {edge!r} is not a triple (t, i, j) of integers") from None
    T = len(sizes) - 1
    if not 0 <= t < T:
        raise ValueError(f"edges[{n}] = {(t, i, j)}: t must be in 0..{T - 1} (edges join layer t to t+1 only)")
    if not 0 <= i < sizes[t + 1]:
        raise ValueError(f"edges[{n}] = {(t, i, j)}: i must be in 0..{sizes[t + 1] - 1} (k[{t + 1}] = {sizes[t + 1]})")
    top = sizes[t] if allow_bias else sizes[t] - 1
    if not 0 <= j <= top:
        raise ValueError(f"edges[{n}] = {(t, i, j)}: j must be in 0..{top} (k[{t}] = {sizes[t]})")
    return t, i, j


def _bias_masks(bias, sizes):
    """True: all bias edges; False/None: no constant neurons; a list: one bool vector per t."""
    T = len(sizes) - 1
    if bias is True:
        return [np.ones(sizes[t + 1], dtype=bool) for t in range(T)]
    if bias is False or bias is None:
        return None
    if isinstance(bias, (list, tuple)) and len(bias) == T:
        out = [np.asarray(m) for m in bias]
        for t, m in enumerate(out):
            if m.shape != (sizes[t + 1],):
                raise ValueError(f"bias[{t}] has shape {m.shape}; expected ({sizes[t + 1]},)")
        return [m.astype(bool) for m in out]
    raise TypeError(f"bias must be True, False or a list of {T} boolean vectors; got {bias!r}")
