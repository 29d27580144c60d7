"""A self-contained HTML report on a trained network (``layerprop report``).

The page needs no network access: plots are embedded as base64 PNG (matplotlib, the ``plot``
extra), the network diagram as inline SVG (:mod:`layerprop.diagram`), and the styles inline.
What it shows comes from ``net.info`` as ``layerprop train`` writes it (history, metrics,
recipe, classes, feature names) and, optionally, from an evaluation on other data. Without
matplotlib the page still has the diagram and the tables (the confusion matrix as a table).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
from html import escape

import numpy as np

from ._xp import to_numpy
from .diagram import network_svg

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:20px 28px;background:white}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 10px}table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.k,th.k{text-align:left}img{max-width:100%}.diagram{overflow-x:auto;border:1px solid #eee}
.note{color:#666;font-size:12px}code{background:#f3f3f3;padding:0 3px}
.cm td{min-width:26px;text-align:center}
table.kv td,table.kv th{text-align:left}
"""


def _plt():
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_curves(history, plt, best_iteration=None, metric_name="accuracy"):
    """Training and validation loss against the iteration i, and the validation metric."""
    rows = [r for r in history if isinstance(r, dict)]
    it = np.array([r.get("iteration", n) for n, r in enumerate(rows)], dtype=float)

    def series(key):
        v = np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])
        return v

    tr, va, vm = series("train_loss"), series("val_loss"), series("val_metric")
    has_metric = np.isfinite(vm).any() and metric_name != "loss"
    fig, axes = plt.subplots(1, 2 if has_metric else 1, figsize=(11 if has_metric else 6.5, 3.8))
    ax = axes[0] if has_metric else axes
    for y, label, color in ((tr, "training loss", "#2166ac"), (va, "validation loss", "#d6604d")):
        ok = np.isfinite(y)
        if ok.any():
            ax.plot(it[ok], y[ok], label=label, color=color, lw=1.6, marker="o" if ok.sum() < 40 else None, ms=3)
    ax.set_xlabel("iteration i")
    ax.set_ylabel("mean loss")
    positive = np.concatenate([tr[np.isfinite(tr)], va[np.isfinite(va)]])
    if positive.size and (positive > 0).all() and positive.max() / positive.min() > 30:
        ax.set_yscale("log")
    if best_iteration is not None:
        ax.axvline(best_iteration, color="#777", ls="--", lw=1, label=f"best on validation (i = {best_iteration})")
    ax.legend(frameon=False)
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    if has_metric:
        ok = np.isfinite(vm)
        axes[1].plot(it[ok], 100 * vm[ok] if metric_name == "accuracy" else vm[ok], color="#1b7837", lw=1.6,
                     marker="o" if ok.sum() < 40 else None, ms=3)
        axes[1].set_xlabel("iteration i")
        axes[1].set_ylabel("validation accuracy (%)" if metric_name == "accuracy" else f"validation {metric_name}")
        axes[1].set_title("validation " + metric_name)
        if best_iteration is not None:
            axes[1].axvline(best_iteration, color="#777", ls="--", lw=1)
        axes[1].grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_confusion(cm, labels, plt, title="confusion matrix"):
    cm = np.asarray(cm)
    n = len(labels)
    size = float(np.clip(0.36 * n + 2.2, 3.6, 8.0))
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), [str(l) for l in labels], rotation=45 if max(len(str(l)) for l in labels) > 3 else 0)
    ax.set_yticks(range(n), [str(l) for l in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 25:
        top = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=9 if n <= 12 else 7,
                            color="white" if cm[i, j] > 0.6 * top else "#222")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_residuals(y_true, y_pred, plt, title="test set"):
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    axes[0].scatter(y_true, y_pred, s=12, alpha=0.6, color="#2166ac")
    axes[0].plot([lo, hi], [lo, hi], color="#777", ls="--", lw=1)
    axes[0].set_xlabel("true")
    axes[0].set_ylabel("predicted")
    axes[0].set_title(f"predicted against true ({title})")
    axes[1].scatter(y_pred, y_true - y_pred, s=12, alpha=0.6, color="#d6604d")
    axes[1].axhline(0, color="#777", ls="--", lw=1)
    axes[1].set_xlabel("predicted")
    axes[1].set_ylabel("residual (true - predicted)")
    axes[1].set_title("residuals")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_weights(net, plt):
    """Histogram of the weights on the real edges of each W[t] (phantom entries left out)."""
    T = net.T
    fig, axes = plt.subplots(1, T, figsize=(min(3.6 * T, 14), 3.0), squeeze=False)
    for t in range(T):
        w = np.asarray(to_numpy(net.W[t]), dtype=float)[np.asarray(to_numpy(net.masks[t]), dtype=bool)]
        ax = axes[0, t]
        ax.hist(w[w >= 0], bins=40, color="#2166ac", alpha=0.8, range=(float(w.min()), float(w.max())) if w.size else None)
        ax.hist(w[w < 0], bins=40, color="#b2182b", alpha=0.8, range=(float(w.min()), float(w.max())) if w.size else None)
        ax.set_title(f"W[{t}]: {w.size} edges, V_{t} -> V_{t + 1}", fontsize=10)
        ax.set_xlabel("weight")
    fig.tight_layout()
    return fig


def _table(rows, header=None, cls="") -> str:
    out = [f'<table class="{cls}">']
    if header:
        out.append("<tr>" + "".join(f'<th class="{"k" if n == 0 else ""}">{escape(str(h))}</th>'
                                    for n, h in enumerate(header)) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="{"k" if n == 0 else ""}">{escape(_fmt(v))}</td>'
                                    for n, v in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        text = ", ".join(_fmt(x) for x in v[:12])
        return text + (f", ... ({len(v)})" if len(v) > 12 else "")
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def _metric(name, value):
    if value is None:
        return None
    return f"{100 * value:.2f}%" if name in ("accuracy", "f1_macro") else value


def _confusion_table(cm, labels) -> str:
    cm = np.asarray(cm)
    top = cm.max() if cm.size else 1
    rows = ['<table class="cm"><tr><th>true \\ predicted</th>' + "".join(f"<th>{escape(str(l))}</th>" for l in labels) + "</tr>"]
    for l, row in zip(labels, cm):
        cells = "".join(f'<td style="background:rgba(33,102,172,{0.85 * v / max(top, 1):.2f});'
                        f'color:{"white" if v > 0.6 * top else "#222"}">{v}</td>' for v in row)
        rows.append(f"<tr><th>{escape(str(l))}</th>{cells}</tr>")
    rows.append("</table>")
    return "".join(rows)


def build_report(model, title="model", evaluation=None, want_png=False):
    """The report page and its plots.

    Parameters
    ----------
    model : object with ``net``, ``info``, ``task``, ``classes``, ``feature_names``
        (the command line's model view), or a bare Network (its ``info`` is used).
    title : str
    evaluation : dict, optional
        ``{"source", "y_true", "y_pred", "metrics"}`` from other data; default: the test
        split figures stored in ``info["metrics"]["test"]``.
    want_png : bool
        Also return the plots as PNG bytes.

    Returns
    -------
    html : str
    pngs : dict of file name to bytes (empty unless ``want_png`` and matplotlib is installed)
    """
    from . import __version__
    from .theory import network_facts

    net = getattr(model, "net", model)
    info = dict(getattr(model, "info", None) or net.info or {})
    task = getattr(model, "task", None) or info.get("task")
    classes = getattr(model, "classes", None) or info.get("classes")
    metrics = info.get("metrics") or {}
    recipe = info.get("recipe") or {}
    history = info.get("history") or []
    plt = _plt()
    pngs, figures = {}, {}

    def add(name, fig_factory):
        if plt is None:
            return
        fig = fig_factory()
        data = _png(fig, plt)
        figures[name] = base64.b64encode(data).decode("ascii")
        if want_png:
            pngs[name] = data

    best_it = metrics.get("best_iteration")
    if history:
        # val_metric is the score training selected by (recipe["metric"]); a loss is already plotted
        metric = recipe.get("metric") if isinstance(recipe.get("metric"), str) else "loss"
        add("curves.png", lambda: plot_curves(history, plt, best_it, metric))
    ev_name = "test split" if evaluation is None else str(evaluation["source"])
    ev_metrics = metrics.get("test") if evaluation is None else evaluation["metrics"]
    if task == "classification" and ev_metrics and ev_metrics.get("confusion_matrix"):
        add("confusion.png", lambda: plot_confusion(ev_metrics["confusion_matrix"], ev_metrics["labels"], plt,
                                                    f"confusion matrix ({ev_name})"))
    resid = None
    if task == "regression":
        if evaluation is not None:
            resid = (evaluation["y_true"], evaluation["y_pred"])
        elif ev_metrics and ev_metrics.get("sample"):
            resid = (ev_metrics["sample"]["y_true"], ev_metrics["sample"]["y_pred"])
        if resid is not None and len(resid[0]):
            add("residuals.png", lambda: plot_residuals(resid[0], resid[1], plt, ev_name))
    add("weights.png", lambda: plot_weights(net, plt))

    facts = network_facts(net)
    arch = "-".join(map(str, net.k))
    labels = {"inputs": info.get("feature_names"), "outputs": classes}
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>layerprop report: "
             f"{escape(title)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>layerprop report: {escape(title)}</h1>",
             f'<p class="sub">network {arch} (depth T = {net.T}, |E| = {facts["num_edges"]}), activations '
             f'{escape(", ".join(net.activation_names))}, loss {escape(net.loss_name)}'
             + (f"; {escape(task)}" if task else "")
             + (f", target column '{escape(str(info.get('target_name')))}'" if info.get("target_name") else "")
             + (f", data {escape(str((info.get('data') or {}).get('name')))}" if info.get("data") else "") + "</p>"]

    parts.append("<h2>Metrics</h2>")
    split_rows = []
    keys = ("accuracy", "f1_macro") if task == "classification" else ("r2", "mse", "mae")
    for split in ("train", "validation", "test"):
        m = metrics.get(split)
        if isinstance(m, dict):
            split_rows.append([split, m.get("n")] + [_metric(k, m.get(k)) for k in keys])
    if evaluation is not None:
        m = evaluation["metrics"]
        split_rows.append([str(evaluation["source"]), m.get("n")] + [_metric(k, m.get(k)) for k in keys])
    if split_rows:
        parts.append(_table(split_rows, ["split", "rows"] + list(keys)))
    else:
        parts.append('<p class="note">No metrics recorded in this model file.</p>')
    extra = [(k, metrics.get(k)) for k in ("iterations", "best_iteration", "best_score", "stopped_early",
                                           "train_seconds") if k in metrics]
    if extra:
        parts.append(_table(extra, ["", "value"]))

    parts.append("<h2>Training and validation curves</h2>")
    if "curves.png" in figures:
        parts.append(f'<img alt="training and validation loss" src="data:image/png;base64,{figures["curves.png"]}">')
    elif not history:
        parts.append('<p class="note">No training history in this model file.</p>')
    else:
        parts.append('<p class="note">Plots need matplotlib: <code>pip install "layerprop[plot]"</code>.</p>')

    parts.append("<h2>Network</h2>")
    parts.append('<p class="note">Edges of E coloured by the sign of their weight (blue +, red -) and shaded by |w| '
                 "(relative to the largest in the layer); phantom edges are not drawn; the squares are the "
                 "constant neurons (bias).</p>")
    parts.append(f'<div class="diagram">{network_svg(net, labels=labels)}</div>')

    if task == "classification":
        parts.append(f"<h2>Confusion matrix ({escape(ev_name)})</h2>")
        if "confusion.png" in figures:
            parts.append(f'<img alt="confusion matrix" src="data:image/png;base64,{figures["confusion.png"]}">')
        elif ev_metrics and ev_metrics.get("confusion_matrix"):
            parts.append(_confusion_table(ev_metrics["confusion_matrix"], ev_metrics["labels"]))
        else:
            parts.append('<p class="note">No test split stored; pass <code>--data FILE</code>.</p>')
    elif task == "regression":
        parts.append(f"<h2>Residuals ({escape(ev_name)})</h2>")
        if "residuals.png" in figures:
            parts.append(f'<img alt="residual plot" src="data:image/png;base64,{figures["residuals.png"]}">')
        else:
            parts.append('<p class="note">No residuals to plot (no test split stored, or no matplotlib); '
                         'pass <code>--data FILE</code>.</p>')
    if "weights.png" in figures:
        parts.append("<h2>Weights</h2>")
        parts.append(f'<img alt="weight histograms" src="data:image/png;base64,{figures["weights.png"]}">')

    parts.append("<h2>Recipe</h2>")
    if recipe:
        parts.append(_table(sorted(recipe.items()), ["setting", "value"], cls="kv"))
    else:
        parts.append('<p class="note">No recipe recorded.</p>')

    parts.append("<h2>What chapter 20 says about this architecture</h2>")
    vs, vg, fp = facts["vc_sign"], facts["vc_sigmoid"], facts["finite_precision"]
    parts.append(_table([
        ["|V| (with constant neurons)", facts["num_vertices"]], ["|E|", facts["num_edges"]],
        ["|E| without bias edges", facts["num_edges_without_bias"]], ["depth T", facts["depth"]],
        ["edges per layer", facts["edges_per_layer"]],
        [f"VC dimension, sign activation {vs['bound']}", f"~ {vs['value']:.3g}"],
        [f"VC dimension, sigmoid: lower {vg['lower']}", f"~ {vg['lower_value']:.3g}"],
        [f"VC dimension, sigmoid: upper {vg['upper']}", f"~ {vg['upper_value']:.3g}"],
        ["finite precision", fp["note"]]], ["", "value"], cls="kv"))
    parts.append('<p class="note">Orders of growth with unknown constants: the numbers compare architectures, '
                 "they are not sample sizes.</p>")

    data_rows = []
    if info.get("feature_names"):
        data_rows.append(["features", info["feature_names"]])
    if classes:
        data_rows.append(["classes", classes])
    if info.get("input_scaling"):
        data_rows.append(["input scaling", "standardized (mean and scale of the training rows, stored in the model)"])
    if data_rows:
        parts.append("<h2>Data</h2>" + _table(data_rows, ["", "value"], cls="kv"))
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(f'<p class="note">Written by layerprop {escape(__version__)} on {stamp}.</p></main></body></html>')
    return "\n".join(parts), pngs
