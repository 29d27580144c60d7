"""``layerprop trace`` and ``layerprop gradcheck``: the algorithm on one example, and its check."""

from __future__ import annotations

import click
import numpy as np

from ._common import example, echo_json, friendly_errors, json_option, parse_floats
from ._model import label_key
from .models import load_model


@click.command("trace", short_help="Trace one example through Backpropagation in the book's notation.", epilog=example('layerprop trace model.safetensors digits --row 0'))
@click.argument("model_path", metavar="MODEL")
@click.argument("data", metavar="[DATA]", required=False)
@click.option("--row", type=click.IntRange(min=0), default=None, metavar="N",
              help="The data row to trace, counting from 0 (the header is not a row) [default: 0].")
@click.option("--x", "x_text", metavar="X1,X2,...", default=None,
              help="Trace these raw feature values instead of a row of DATA.")
@click.option("--y", "y_text", metavar="LABEL", default=None,
              help="The target for --x (a class label or a number); without it only the forward pass is shown.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Edges with the largest partial derivatives to show, per layer.")
@click.option("--max-values", type=click.IntRange(min=1), default=10, show_default=True,
              help="Vector entries printed per line (--json has them all).")
@json_option
@friendly_errors
def trace_command(model_path, data, row, x_text, y_text, top, max_values, as_json):
    """Trace one example through Backpropagation in the book's notation (SSBD 20.6):
    a_t, o_t, sigma'(a_t) and delta_t per layer, the loss, and the largest edge partials
    delta_{t,i} sigma'(a_{t,i}) o_{t-1,j} with the numbers filled in.
    """
    from ..trace import render_text, trace_example

    if (data is None) == (x_text is None):
        raise click.UsageError("give DATA (with --row N) or --x X1,X2,..., not both")
    if x_text is not None and row is not None:
        raise click.UsageError("--row is for DATA; --x gives the example itself")
    if data is not None and y_text is not None:
        raise click.UsageError("--y goes with --x; a row of DATA has its own target")
    model = load_model(model_path)
    label = None
    if x_text is not None:
        x_raw = parse_floats(x_text, "--x")
        if x_raw.shape[0] != model.net.k[0]:
            raise click.BadParameter(f"{x_raw.shape[0]} values given; the model has {model.net.k[0]} inputs",
                                     param_hint="--x")
        if y_text is not None:
            label = _parse_label(y_text, model)
    else:
        row = 0 if row is None else row
        X, y = _read_rows(model, data)
        if row >= X.shape[0]:
            from ..data import DataError

            raise DataError(f"{data}: has {X.shape[0]} rows (0..{X.shape[0] - 1}); there is no row {row}")
        x_raw = X[row]
        label = None if y is None else y[row]
    O = model.outputs(x_raw[None, :])
    prediction = model.decode(O)[0]
    y_net = None if label is None else model.encode_targets([label])[0]
    tr = trace_example(model.net, model.scale_X(x_raw), y_net, top=top, x_raw=x_raw,
                       feature_names=model.feature_names, label=_plain(label),
                       prediction=_plain(prediction), row=row)
    if as_json:
        echo_json(tr.to_dict())
    else:
        click.echo(render_text(tr, max_values=max_values))


def _plain(v):
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    return v


def _read_rows(model, data):
    """(X, y) of DATA; y is None when DATA has no target column the model knows."""
    from ..data import DataError

    try:
        return model.read_labelled(data)
    except DataError as labelled_error:
        try:
            return model.read_features(data), None
        except DataError:
            raise labelled_error from None


def _parse_label(text, model):
    if model.task == "classification":
        for c in model.classes:
            if str(c) == text or label_key(c) == label_key(_number(text)):
                return c
        raise click.BadParameter(f"{text!r} is not one of the model's classes {model.classes}", param_hint="--y")
    value = _number(text)
    if not isinstance(value, (int, float)):
        raise click.BadParameter(f"{text!r} is not a number (this is a regression model)", param_hint="--y")
    return float(value)


def _number(text):
    try:
        v = float(text)
    except ValueError:
        return text
    return v if np.isfinite(v) else text


@click.command("gradcheck", short_help='Check Backpropagation against finite differences and the chain rule.', epilog=example('layerprop gradcheck model.safetensors --data digits --rows 2'))
@click.argument("model_path", metavar="[MODEL]", required=False)
@click.option("--data", metavar="DATA", default=None, help="Check on rows of DATA (default: random inputs).")
@click.option("--rows", type=click.IntRange(min=1), default=4, show_default=True, help="Examples in the check.")
@click.option("--sizes", default="4,5,3", show_default=True, metavar="K0,K1,...",
              help="Layer sizes of the random network (when no MODEL).")
@click.option("--activation", default="sigmoid", show_default=True, help="Hidden activation of the random network.")
@click.option("--loss", type=click.Choice(["squared", "softmax_cross_entropy", "binary_cross_entropy"]),
              default="squared", show_default=True, help="Loss of the random network.")
@click.option("--density", type=click.FloatRange(0, 1, min_open=True), default=0.7, show_default=True,
              help="Edge density of the random network (phantom edges are skipped by the check).")
@click.option("--eps", type=click.FloatRange(0, min_open=True), default=1e-6, show_default=True,
              help="Finite-difference step h of (l(w + h e) - l(w - h e)) / 2h.")
@click.option("--tol", type=click.FloatRange(0, min_open=True), default=1e-6, show_default=True,
              help="Largest relative error that passes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random network and inputs.")
@json_option
@friendly_errors
def gradcheck_command(model_path, data, rows, sizes, activation, loss, density, eps, tol, seed, as_json):
    """Check Backpropagation against central finite differences and the Jacobian chain rule,
    on MODEL or on a random network; names the worst edge. Exit 1 when the check fails.
    """
    import layerprop as lp

    rng = np.random.default_rng(seed)
    if model_path is None:
        if data is not None:
            raise click.UsageError("--data needs a MODEL")
        try:
            k = [int(s) for s in sizes.split(",")]
        except ValueError:
            raise click.BadParameter(f"{sizes!r} is not a list of layer sizes like 4,5,3", param_hint="--sizes") from None
        graph = lp.LayeredGraph.random(k, density, seed=seed) if density < 1 else lp.LayeredGraph.dense(k)
        net = lp.Network(graph, activation=activation, loss=loss, seed=seed)
        X = rng.normal(size=(rows, net.k[0]))
        Y = _random_targets(net, rows, rng)
        what = f"random network {'-'.join(map(str, net.k))} (density {density:g}, seed {seed})"
    else:
        model = load_model(model_path)
        net = model.net
        if data is not None:
            X_raw, y = _read_rows(model, data)
            X_raw = X_raw[:rows]
            X = model.scale_X(X_raw)
            Y = model.encode_targets(y[:rows]) if y is not None else _random_targets(net, len(X), rng)
        else:
            X = rng.normal(size=(rows, net.k[0]))
            Y = _random_targets(net, rows, rng)
        what = f"{model_path} ({'-'.join(map(str, net.k))})"
    result = lp.gradcheck(net, X, Y, eps=float(eps), tol=float(tol))
    chain = lp.chain_rule_check(net, X[0], Y[0], eps=float(eps))
    t, i, j = result.worst_edge
    out = {"network": what, "num_edges": net.graph.num_edges(), "rows": int(X.shape[0]), "eps": eps, "tol": tol,
           "max_rel_error": result.max_rel_error, "worst_tensor": result.worst_tensor,
           "worst_edge": list(result.worst_edge), "per_tensor": result.per_tensor, "ok": bool(result.ok),
           "chain_rule": chain}
    if as_json:
        echo_json(out)
    else:
        echo = click.echo
        echo(f"gradient check on {what}: |E| = {out['num_edges']} edges, {out['rows']} example(s), h = {eps:g}")
        echo(f"  backprop vs finite differences: max relative error {result.max_rel_error:.3g} "
             f"(tolerance {tol:g}) -> {'ok' if result.ok else 'FAILED'}")
        edge = f"v_{{{t},{j}}} -> v_{{{t + 1},{i}}}" if j < net.k[t] else f"bias (constant neuron of layer {t}) -> v_{{{t + 1},{i}}}"
        echo(f"  worst edge: {result.worst_tensor}, {edge}")
        for name, err in result.per_tensor.items():
            echo(f"    {name:<6} {err:.3g}")
        echo(f"  one example, chain rule J_w(o_T): backprop vs delta_T^T J_w = {chain['backprop_vs_jacobian']:.3g}, "
             f"vs finite differences = {chain['backprop_vs_finite_differences']:.3g}")
    if not result.ok:
        raise click.ClickException(f"gradient check failed: relative error {result.max_rel_error:.3g} > {tol:g} "
                                   f"at {result.worst_tensor}")


def _random_targets(net, n, rng):
    k = net.k[-1]
    if net.loss_name in ("softmax_cross_entropy", "binary_cross_entropy") or net.activation_names[-1] == "sigmoid":
        return np.eye(k)[rng.integers(0, k, n)] if k > 1 else rng.integers(0, 2, (n, 1)).astype(float)
    return rng.normal(size=(n, k))
