"""The network as an SVG diagram: layers V_0..V_T as columns, the edges of E as lines coloured by
the sign of their weight (blue positive, red negative) and shaded by its magnitude.

Phantom edges (not in E) are not drawn. Each layer's constant neuron (the bias) is a small
square marked 1 above its column. Layers wider than ``max_per_layer`` (100) show the neurons with the
largest total |weight| and say how many are hidden; beyond ``max_edges`` drawn lines only the
strongest edges are kept (the caption says so). ``Network._repr_svg_`` uses this in Jupyter.
"""

from __future__ import annotations

from html import escape

import numpy as np

from ._xp import to_numpy

POSITIVE, NEGATIVE = "#2166ac", "#b2182b"


def _shown_neurons(net, W, max_per_layer):
    """Per layer, the indices of the neurons drawn (all, or the strongest ``max_per_layer``)."""
    shown = []
    for t, k in enumerate(net.k):
        if k <= max_per_layer:
            shown.append(np.arange(k))
            continue
        strength = np.zeros(k)
        if t > 0:
            strength += np.abs(W[t - 1]).sum(axis=1)
        if t < net.T:
            strength += np.abs(W[t]).sum(axis=0)
        keep = np.sort(np.argsort(-strength, kind="stable")[:max_per_layer])
        shown.append(keep)
    return shown


def network_svg(net, max_per_layer: int = 100, max_edges: int = 3000, labels=None, title=None) -> str:
    """An SVG drawing of ``net`` (a :class:`~layerprop.Network`) as a string.

    Parameters
    ----------
    net : Network
    max_per_layer : int
        Wider layers show only this many neurons (those with the largest total |weight|).
    max_edges : int
        At most this many edges are drawn (the strongest |w|, shared among the layers).
    labels : dict, optional
        ``{"inputs": [...], "outputs": [...]}``: names written next to V_0 and V_T when the
        layer has at most 24 neurons (e.g. feature names and class labels).
    title : str, optional
        A caption line above the drawing.
    """
    W = [np.asarray(to_numpy(w), dtype=np.float64) for w in net.W]
    B = [None if v is None else np.asarray(to_numpy(v), dtype=np.float64) for v in net.b]
    masks = [np.asarray(to_numpy(m), dtype=bool) for m in net.masks]
    bmasks = None if net.bias_masks is None else [np.asarray(to_numpy(m), dtype=bool) for m in net.bias_masks]
    shown = _shown_neurons(net, W, max_per_layer)
    T = net.T
    labels = labels or {}
    in_labels = labels.get("inputs") if net.k[0] <= 24 else None
    out_labels = labels.get("outputs") if net.k[-1] <= 24 else None

    n_max = max(len(s) for s in shown)
    step = float(np.clip(640.0 / max(n_max, 1), 7.0, 34.0))
    r = max(2.0, min(10.0, step * 0.36))
    left = 70 + (max(len(str(s)) for s in in_labels) * 6.5 if in_labels else 0)
    right = 70 + (max(len(str(s)) for s in out_labels) * 6.5 if out_labels else 0)
    col = float(np.clip(760.0 / max(T, 1), 130.0, 340.0))
    top = 62 + (18 if title else 0)
    body = n_max * step
    width = max(left + T * col + right + 20, 760.0)
    height = top + body + 90
    x0 = (width - (T * col + left + right)) / 2 + left  # centre the columns
    xs = [x0 + t * col for t in range(T + 1)]

    def ys(t):
        m = len(shown[t])
        y0 = top + (body - m * step) / 2 + step / 2
        return {int(j): y0 + n * step for n, j in enumerate(shown[t])}

    pos = [ys(t) for t in range(T + 1)]
    bias_y = [min(p.values()) - max(step, 14) for p in pos]

    # every drawable edge: (|w|, w, x1, y1, x2, y2); then keep the strongest max_edges overall
    edges, total_real = [], 0
    for t in range(T):
        m = masks[t]
        total_real += int(m.sum()) + (int(bmasks[t].sum()) if bmasks is not None else 0)
        scale = max(np.abs(W[t][m]).max() if m.any() else 0.0,
                    np.abs(B[t][bmasks[t]]).max() if bmasks is not None and bmasks[t].any() else 0.0) or 1.0
        src, dst = shown[t], shown[t + 1]
        sub = m[np.ix_(dst, src)]
        for a, b in zip(*np.nonzero(sub)):
            i, j = int(dst[a]), int(src[b])
            w = W[t][i, j]
            edges.append((abs(w) / scale, w, xs[t], pos[t][j], xs[t + 1], pos[t + 1][i]))
        if bmasks is not None:
            for i in dst:
                if bmasks[t][i]:
                    w = B[t][i]
                    edges.append((abs(w) / scale, w, xs[t], bias_y[t], xs[t + 1], pos[t + 1][int(i)]))
    drawn = sorted(edges, key=lambda e: e[0])[-max_edges:] if len(edges) > max_edges else sorted(edges, key=lambda e: e[0])

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']
    if title:
        out.append(f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(str(title))}</text>')
    y_leg = 22 + (18 if title else 0)
    out.append(f'<g font-size="11"><line x1="10" y1="{y_leg}" x2="34" y2="{y_leg}" stroke="{POSITIVE}" stroke-width="2.5"/>'
               f'<text x="38" y="{y_leg + 4}">positive weight</text>'
               f'<line x1="140" y1="{y_leg}" x2="164" y2="{y_leg}" stroke="{NEGATIVE}" stroke-width="2.5"/>'
               f'<text x="168" y="{y_leg + 4}">negative weight</text>'
               f'<text x="280" y="{y_leg + 4}" fill="#555">darker and thicker = larger |w|; phantom edges (not in E) are not drawn</text></g>')
    lw = 0.4 + 1.6 * (r / 10.0)
    out.append('<g stroke-linecap="round">')
    for mag, w, x1, y1, x2, y2 in drawn:
        color = POSITIVE if w >= 0 else NEGATIVE
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
                   f'stroke-opacity="{0.04 + 0.9 * mag ** 1.5:.3f}" stroke-width="{0.3 + lw * mag:.2f}"/>')
    out.append("</g>")
    # neurons
    out.append('<g fill="white" stroke="#333" stroke-width="1">')
    for t in range(T + 1):
        for j, y in pos[t].items():
            out.append(f'<circle cx="{xs[t]:.1f}" cy="{y:.1f}" r="{r:.1f}"><title>v_{{{t},{j}}}</title></circle>')
        if t < T and bmasks is not None:
            s = max(r * 1.6, 9)
            out.append(f'<rect x="{xs[t] - s / 2:.1f}" y="{bias_y[t] - s / 2:.1f}" width="{s:.1f}" height="{s:.1f}" '
                       f'fill="#f4f4f4"><title>constant neuron of layer {t} (bias)</title></rect>')
    out.append("</g>")
    if bmasks is not None:
        out.append('<g font-size="9" text-anchor="middle" fill="#333">')
        for t in range(T):
            out.append(f'<text x="{xs[t]:.1f}" y="{bias_y[t] + 3:.1f}">1</text>')
        out.append("</g>")
    # side labels
    fs = max(8, min(12, step * 0.8))
    if in_labels:
        out.append(f'<g font-size="{fs:.0f}" text-anchor="end" fill="#333">')
        for j, y in pos[0].items():
            out.append(f'<text x="{xs[0] - r - 4:.1f}" y="{y + fs / 3:.1f}">{escape(str(in_labels[j]))}</text>')
        out.append("</g>")
    if out_labels:
        out.append(f'<g font-size="{fs:.0f}" fill="#333">')
        for i, y in pos[T].items():
            out.append(f'<text x="{xs[T] + r + 4:.1f}" y="{y + fs / 3:.1f}">{escape(str(out_labels[i]))}</text>')
        out.append("</g>")
    # captions under each column
    out.append('<g text-anchor="middle" fill="#222">')
    y_cap = top + body + 20
    for t in range(T + 1):
        kind = "input" if t == 0 else ("output" if t == T else "hidden")
        out.append(f'<text x="{xs[t]:.1f}" y="{y_cap:.1f}" font-weight="bold">V_{t} ({kind})</text>')
        sub = f"k_{t} = {net.k[t]}"
        if len(shown[t]) < net.k[t]:
            sub += f", {len(shown[t])} shown"
        out.append(f'<text x="{xs[t]:.1f}" y="{y_cap + 15:.1f}">{sub}</text>')
        if t > 0:
            out.append(f'<text x="{xs[t]:.1f}" y="{y_cap + 30:.1f}" fill="#555">sigma: {escape(net.activation_names[t - 1])}</text>')
    out.append("</g>")
    note = f"|E| = {total_real} edges"
    if len(drawn) < total_real:
        note += f"; {len(drawn)} drawn (the strongest among the neurons shown)"
    out.append(f'<text x="10" y="{height - 6:.0f}" font-size="11" fill="#555">{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)
