"""One example through Backpropagation (SSBD 20.6), in the book's notation.

:func:`trace_example` records, for one example (x, y), every layer's a_t, o_t, sigma'(a_t) and
delta_t (the book's dl/do_t), the loss, and the edges with the largest partial derivatives
dl/dw = delta_{t,i} sigma'(a_{t,i}) o_{t-1,j}, each with its three factors. :meth:`ExampleTrace.to_dict`
gives plain JSON data (for ``layerprop trace --json`` and the browser playground) and
:func:`render_text` the text the command prints.

Indexing follows the book: layer t has a_t, o_t; the edge (v_{t-1,j}, v_{t,i}) into layer t has
weight W[t-1][i, j] in code. A bias edge comes from the constant neuron of layer t-1, whose
output is 1 (index j = k_{t-1}).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from ._xp import to_numpy

LOSS_FORMULAS = {
    "squared": "l = 1/2 ||o_T - y||^2",
    "softmax_cross_entropy": "l = -sum_i y_i log softmax(o_T)_i",
    "binary_cross_entropy": "l = -sum_i [y_i log o_{T,i} + (1 - y_i) log(1 - o_{T,i})]",
    "poisson": "l = sum_i exp(o_{T,i}) - y_i o_{T,i} + y_i log y_i - y_i",
}
DELTA_T_FORMULAS = {
    "squared": "delta_T = o_T - y",
    "softmax_cross_entropy": "delta_T = softmax(o_T) - y",
    "binary_cross_entropy": "delta_T = (o_T - y) / (o_T (1 - o_T))",
    "poisson": "delta_T = exp(o_T) - y",
}


@dataclass
class LayerTrace:
    """Layer t of one example: a_t, o_t, sigma'(a_t), delta_t = dl/do_t (lists of floats)."""

    t: int
    k: int
    activation: Optional[str]
    a: Optional[list]
    o: list
    sigma_prime: Optional[list]
    delta: Optional[list] = None


@dataclass
class EdgePartial:
    """dl/dw for the edge (v_{t-1,j}, v_{t,i}) = delta_{t,i} * sigma'(a_{t,i}) * o_{t-1,j}.

    ``bias`` marks an edge from the constant neuron of layer t-1 (o = 1, j = k_{t-1});
    in code the weight is ``W[t-1][i, j]`` (or ``b[t-1][i]``)."""

    t: int
    i: int
    j: int
    bias: bool
    weight: float
    delta: float
    sigma_prime: float
    o_prev: float
    value: float

    @property
    def tensor(self) -> str:
        return f"b[{self.t - 1}][{self.i}]" if self.bias else f"W[{self.t - 1}][{self.i},{self.j}]"


@dataclass
class ExampleTrace:
    """The whole trace of one example (see the module docstring)."""

    sizes: list
    activations: list
    loss_name: str
    layers: list
    loss: Optional[float]
    edges: list = field(default_factory=list)
    num_edges: int = 0
    x_raw: Optional[list] = None
    feature_names: Optional[list] = None
    y: Optional[list] = None
    label: Optional[object] = None
    prediction: Optional[object] = None
    row: Optional[int] = None

    def to_dict(self) -> dict:
        """Plain JSON-ready data: numbers as floats, lists for vectors."""
        d = asdict(self)
        for e, edge in zip(d["edges"], self.edges):
            e["tensor"] = edge.tensor
            e["formula"] = _edge_formula(edge)
        d["formulas"] = {"loss": LOSS_FORMULAS.get(self.loss_name), "delta_T": DELTA_T_FORMULAS.get(self.loss_name),
                         "forward": "a_t = W_{t-1} o_{t-1} + b_{t-1}, o_t = sigma_t(a_t)",
                         "backward": "delta_t = W_t^T (delta_{t+1} * sigma'(a_{t+1}))",
                         "edge": "dl/dW_{t-1,i,j} = delta_{t,i} sigma'(a_{t,i}) o_{t-1,j}"}
        return d


def _floats(v):
    return None if v is None else [float(z) for z in np.ravel(to_numpy(v))]


def trace_example(net, x, y=None, top=10, **extra) -> ExampleTrace:
    """Run one example (x, y) through forward and backward passes and record everything.

    Parameters
    ----------
    net : Network
    x : array of shape (k_0,)
        The input as the network sees it (already scaled).
    y : array of shape (k_T,), optional
        The target as the network sees it (one-hot, scaled). Without it only the forward
        pass is recorded (no loss, no delta, no edge partials).
    top : int
        How many edges with the largest |dl/dw| to record per layer.
    **extra
        Stored as is: ``x_raw``, ``feature_names``, ``label``, ``prediction``, ``row``.
    """
    net = net.to("numpy")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    T, k = net.T, list(net.k)
    if y is None:
        tr, delta, g, loss = net.forward(x), [None] * (T + 1), [None] * (T + 1), None
    else:
        grad = net.backprop(x, np.asarray(y, dtype=np.float64).reshape(-1))
        tr, delta, g, loss = grad.trace, grad.delta, grad.g, grad.loss
        tr.a = [None] + [v[0] for v in tr.a[1:]]
        tr.o = [v[0] for v in tr.o]
    layers = [LayerTrace(0, k[0], None, None, _floats(tr.o[0]), None)]
    for t in range(1, T + 1):
        sp = net.sigma_prime[t](tr.a[t])
        layers.append(LayerTrace(t, k[t], net.activation_names[t - 1], _floats(tr.a[t]), _floats(tr.o[t]),
                                 _floats(sp), _floats(delta[t])))
    edges = [] if y is None else _largest_partials(net, tr, delta, g, top)
    return ExampleTrace(sizes=k, activations=list(net.activation_names), loss_name=net.loss_name,
                        layers=layers, loss=loss, edges=edges, num_edges=net.graph.num_edges(),
                        y=None if y is None else _floats(y),
                        **{key: _plain(v) for key, v in extra.items()})


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _largest_partials(net, tr, delta, g, top):
    """Per layer t = T..1, the ``top`` real edges into layer t by |delta_{t,i} sigma'(a_{t,i}) o_{t-1,j}|
    (bias edges included, phantom edges excluded)."""
    out = []
    for t in range(net.T, 0, -1):
        gt = np.asarray(g[t], dtype=np.float64).reshape(-1)
        o_prev = np.asarray(tr.o[t - 1], dtype=np.float64).reshape(-1)
        mags = np.abs(np.outer(gt, o_prev))
        cands = [(mags[i, j], int(i), int(j), False) for i, j in zip(*np.nonzero(np.asarray(net.masks[t - 1])))]
        if net.bias_masks is not None:
            cands += [(abs(gt[i]), int(i), net.k[t - 1], True) for i in np.nonzero(net.bias_masks[t - 1])[0]]
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        a_t = np.asarray(tr.a[t], dtype=np.float64).reshape(-1)
        sp_t = np.asarray(net.sigma_prime[t](a_t), dtype=np.float64).reshape(-1)
        d_t = np.asarray(delta[t], dtype=np.float64).reshape(-1)
        for _, i, j, bias in cands[:top]:
            o = 1.0 if bias else float(o_prev[j])
            w = float(net.b[t - 1][i] if bias else net.W[t - 1][i, j])
            out.append(EdgePartial(t, i, j, bias, w, float(d_t[i]), float(sp_t[i]), o, float(gt[i]) * o))
    return out


def _num(v) -> str:
    return f"{v:.4g}"


def _vector(v, max_values) -> str:
    if v is None:
        return "-"
    shown = ", ".join(_num(z) for z in v[:max_values])
    more = f", ... ({len(v)} values)" if len(v) > max_values else ""
    return f"[{shown}{more}]"


def _edge_formula(e: EdgePartial) -> str:
    src = f"1 (constant neuron v_{{{e.t - 1},{e.j}}})" if e.bias else f"o_{{{e.t - 1},{e.j}}}"
    return (f"delta_{{{e.t},{e.i}}} * sigma'(a_{{{e.t},{e.i}}}) * {src} = "
            f"{_num(e.delta)} * {_num(e.sigma_prime)} * {_num(e.o_prev)} = {_num(e.value)}")


def render_text(tr: ExampleTrace, max_values: int = 8) -> str:
    """The trace as text in the book's notation (vectors cut to ``max_values`` entries)."""
    T = len(tr.sizes) - 1
    lines = []
    head = f"example{'' if tr.row is None else f' (row {tr.row})'}: network {'-'.join(map(str, tr.sizes))}, "
    head += f"|E| = {tr.num_edges}, loss {tr.loss_name}"
    lines.append(head)
    if tr.label is not None or tr.prediction is not None:
        target = "-" if tr.label is None else repr(tr.label)
        lines.append(f"  target {target}   prediction {tr.prediction!r}")
    if tr.x_raw is not None:
        lines.append(f"  x (raw)        = {_vector(tr.x_raw, max_values)}")
    lines.append("")
    lines.append("forward:  o_0 = x;  a_t = W_{t-1} o_{t-1} + b_{t-1},  o_t = sigma_t(a_t)")
    for L in tr.layers:
        if L.t == 0:
            lines.append(f"  t = 0  input layer V_0, k_0 = {L.k}")
            lines.append(f"    o_0          = {_vector(L.o, max_values)}")
            continue
        kind = "output layer" if L.t == T else "hidden layer"
        lines.append(f"  t = {L.t}  {kind} V_{L.t}, k_{L.t} = {L.k}, sigma = {L.activation}")
        lines.append(f"    a_{L.t:<11}= {_vector(L.a, max_values)}")
        lines.append(f"    o_{L.t:<11}= {_vector(L.o, max_values)}")
        lines.append(f"    sigma'(a_{L.t}){' ' * max(0, 3 - len(str(L.t)))}= {_vector(L.sigma_prime, max_values)}")
    if tr.loss is None:
        lines.append("")
        lines.append("no target y: the backward pass needs one (give a labelled row, or --y)")
        return "\n".join(lines)
    lines.append("")
    lines.append(f"loss:     {LOSS_FORMULAS.get(tr.loss_name, tr.loss_name)} = {tr.loss:.6g}")
    lines.append(f"  y              = {_vector(tr.y, max_values)}")
    lines.append("")
    lines.append(f"backward: {DELTA_T_FORMULAS.get(tr.loss_name, 'delta_T = dl/do_T')};  "
                 "delta_t = W_t^T (delta_{t+1} * sigma'(a_{t+1})),  t = T-1..1")
    for L in reversed(tr.layers[1:]):
        lines.append(f"    delta_{L.t:<7}= {_vector(L.delta, max_values)}")
    lines.append("")
    lines.append(f"largest edge partials per layer (|E| = {tr.num_edges}):  "
                 "dl/dw(v_{t-1,j} -> v_{t,i}) = delta_{t,i} * sigma'(a_{t,i}) * o_{t-1,j}")
    last = None
    for e in tr.edges:
        if e.t != last:
            lines.append(f"  into layer {e.t} (W[{e.t - 1}], b[{e.t - 1}]):")
            last = e.t
        lines.append(f"    {e.tensor:<13} w = {_num(e.weight):>9}   {_edge_formula(e)}")
    return "\n".join(lines)
