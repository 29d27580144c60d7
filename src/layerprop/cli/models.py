"""``layerprop predict``, ``evaluate``, ``inspect`` and ``export``."""

from __future__ import annotations

import csv
import io as _io
import sys

import click
import numpy as np

from ._common import (example, check_output_path, echo_json, format_metric, friendly_errors, json_option,
                      write_output)
from ._model import HEADLINE, Model


def load_model(path) -> Model:
    """A model file as a :class:`Model` (ModelFileError, a ValueError, for a bad file)."""
    from ..io import load

    return Model(load(path), path)


@click.command("predict", epilog=example('layerprop predict model.safetensors digits -o predictions.csv --proba'))
@click.argument("model_path", metavar="MODEL")
@click.argument("data", metavar="DATA")
@click.option("-o", "--output", metavar="OUT.csv", default=None,
              help="Write the predictions to a CSV file (atomically) instead of stdout.")
@click.option("--proba", is_flag=True, help="Add one score column per class (softmax probabilities "
                                            "for softmax cross-entropy models).")
@friendly_errors
def predict_command(model_path, data, output, proba):
    """Predict the target of every row of DATA with MODEL.

    DATA must hold the feature columns the model was trained on (by name; extra columns,
    such as the target, are ignored). Output: a CSV with a header, one row per example.
    """
    if output is not None:
        check_output_path(output, "predictions file")
    model = load_model(model_path)
    if proba and model.task != "classification":
        raise click.UsageError("--proba is for classification models")
    X = model.read_features(data)
    O = model.outputs(X)
    pred = model.decode(O)
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    name = model.target_name or "prediction"
    header = [name if name != "prediction" else "prediction"]
    if proba:
        header += [f"p_{c}" for c in model.classes]
    writer.writerow(header)
    scores = model.scores(O) if proba else None
    for r in range(len(pred)):
        value = pred[r]
        row = [value if model.task == "classification" else repr(float(value))]
        if proba:
            row += [f"{p:.6g}" for p in scores[r]]
        writer.writerow(row)
    if output is None:
        sys.stdout.write(buf.getvalue())
    else:
        write_output(output, buf.getvalue())
        click.echo(f"wrote {len(pred)} predictions to {output}", err=True)


@click.command("evaluate", short_help='Score MODEL on labelled DATA (accuracy, F1, confusion; R^2, MSE).', epilog=example('layerprop evaluate model.safetensors test.csv'))
@click.argument("model_path", metavar="MODEL")
@click.argument("data", metavar="DATA")
@json_option
@friendly_errors
def evaluate_command(model_path, data, as_json):
    """Score MODEL on labelled DATA: accuracy, macro F1 and the confusion matrix
    (classification), or R^2, MSE and MAE (regression).

    DATA needs the model's feature columns and its target column.
    """
    model = load_model(model_path)
    X, y = model.read_labelled(data)
    m = model.metrics(X, y)
    if as_json:
        echo_json({"model": model_path, "data": data, "task": model.task, **m})
        return
    click.echo(f"{data}: {m['n']} rows, {model.task}")
    for k in HEADLINE[model.task]:
        click.echo(f"{k:<10} {format_metric(k, m.get(k))}")
    if model.task == "classification":
        click.echo("confusion matrix (rows: true, columns: predicted)")
        click.echo(format_confusion(m["confusion_matrix"], m["labels"]))


def format_confusion(cm, labels) -> str:
    labels = [str(l) for l in labels]
    cm = np.asarray(cm)
    w = max([len(l) for l in labels] + [len(str(cm.max())) if cm.size else 1]) + 1
    lines = [" " * w + "".join(f"{l:>{w}}" for l in labels)]
    for l, row in zip(labels, cm):
        lines.append(f"{l:>{w}}" + "".join(f"{v:>{w}}" for v in row))
    return "\n".join(lines)


@click.command("inspect", short_help='Describe MODEL: architecture, |E|, recipe, metrics, chapter-20 facts.', epilog=example('layerprop inspect model.safetensors'))
@click.argument("model_path", metavar="MODEL")
@click.option("--bits", type=click.IntRange(min=1), default=32, show_default=True,
              help="Bits per weight for the finite-class bound of chapter 20.")
@json_option
@friendly_errors
def inspect_command(model_path, bits, as_json):
    """Describe MODEL: architecture, |E| per layer, activations, loss, recipe, metrics, and what
    chapter 20 says about this architecture (depth, |V|, |E|, VC-dimension bounds).
    """
    from ..theory import network_facts

    model = load_model(model_path)
    net, info = model.net, model.info
    facts = network_facts(net, bits=bits)
    out = {"model": model_path, "sizes": list(net.k), "activations": list(net.activation_names),
           "loss": net.loss_name, "dtype": str(net.dtype), "bias": net.bias_masks is not None,
           "task": model.task, "classes": model.classes, "target_name": model.target_name,
           "feature_names": model.feature_names, "facts": facts, "recipe": info.get("recipe"),
           "metrics": info.get("metrics")}
    if as_json:
        echo_json(out)
        return
    echo = click.echo
    echo(f"model         {model_path}")
    echo(f"architecture  {'-'.join(map(str, net.k))} (depth T = {net.T}), loss {net.loss_name}, {net.dtype}")
    for t in range(net.T):
        full = net.k[t] * net.k[t + 1]
        edges = facts["edges_per_layer"][t]
        bias = facts["bias_edges_per_layer"][t] if facts["bias_edges_per_layer"] else 0
        dens = f" ({100 * edges / full:.0f}% of {full})" if edges != full else ""
        echo(f"  layer {t}->{t + 1}  W[{t}] {net.k[t + 1]}x{net.k[t]}: {edges} edges{dens} + {bias} bias edges,"
             f" sigma = {net.activation_names[t]}")
    if model.task:
        extra = f", target {model.target_name!r}" if model.target_name else ""
        extra += f", classes {_short(model.classes)}" if model.classes else ""
        echo(f"task          {model.task}{extra}")
    if model.feature_names:
        echo(f"features      {len(model.feature_names)}: {_short(model.feature_names)}")
    echo("chapter 20 (SSBD), for this architecture:")
    echo(f"  |V| = {facts['num_vertices']} (with constant neurons), |E| = {facts['num_edges']} "
         f"({facts['num_edges_without_bias']} without bias edges), depth T = {facts['depth']}")
    vs, vg = facts["vc_sign"], facts["vc_sigmoid"]
    echo(f"  VC dimension, sign activation: {vs['bound']} ~ {vs['value']:.3g}")
    echo(f"  VC dimension, sigmoid: between {vg['lower']} ~ {vg['lower_value']:.3g} "
         f"and {vg['upper']} ~ {vg['upper_value']:.3g}")
    echo(f"  finite precision: {facts['finite_precision']['note']}")
    recipe = info.get("recipe")
    if recipe:
        keys = ("optimizer", "step_size", "schedule", "l2", "batch_size", "iterations", "epochs", "seed")
        shown = [f"{k}={recipe[k]}" for k in keys if recipe.get(k) is not None]
        if shown:
            echo("recipe        " + ", ".join(shown))
    metrics = info.get("metrics") or {}
    for split in ("train", "validation", "test"):
        if isinstance(metrics.get(split), dict):
            m = metrics[split]
            echo(f"{split:<13} " + "  ".join(f"{k} {format_metric(k, m.get(k))}"
                                             for k in HEADLINE.get(model.task, ()) if k in m))


def _short(items, limit=6):
    items = list(items or [])
    text = ", ".join(map(str, items[:limit]))
    return text + (f", ... ({len(items)} in all)" if len(items) > limit else "")


@click.command("export", short_help='Export MODEL to ONNX.', epilog=example('layerprop export model.safetensors --onnx model.onnx'))
@click.argument("model_path", metavar="MODEL")
@click.option("--onnx", "onnx_path", metavar="OUT.onnx", required=True, help="Write an ONNX model here.")
@friendly_errors
def export_command(model_path, onnx_path):
    """Export MODEL to another format (ONNX; needs the 'onnx' extra).
    """
    check_output_path(onnx_path, "ONNX file")
    model = load_model(model_path)
    try:
        import onnx  # noqa: F401  (the optional extra)
    except ImportError:
        raise click.ClickException("ONNX export needs the 'onnx' extra: pip install 'layerprop[onnx]'") from None
    from ..onnx_export import to_onnx

    to_onnx(model.net, onnx_path)  # written atomically; includes the input scaling and classes
    click.echo(f"wrote {onnx_path}", err=True)
