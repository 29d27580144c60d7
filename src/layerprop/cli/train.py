"""``layerprop train`` and ``layerprop datasets``."""

from __future__ import annotations

import math
import time
from typing import NamedTuple, Optional

import click
import numpy as np

from ..activations import ACTIVATIONS
from ..losses import LOSSES
from ..network import INITS
from ..schedules import SCHEDULES
from ._common import (example, check_output_path, echo_json, format_metric, friendly_errors, json_option,
                      one_line)
from ._distributed import check_processes, distributed_options, is_writer, launch_train
from ..device import resolve_device, to_device
from ._model import HEADLINE, Model

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
DEFAULT_DATA = "digits"
# The default run's recipe (one hidden layer of 256 relu neurons, softmax cross-entropy for
# classification, the book's plain SGD with minibatches of 4, eta 0.05, 30 epochs) was chosen by
# scripts/choose_default_recipe.py: the best 5-fold cross-validated accuracy (97.42%) of a fixed
# grid of 20 candidates, scored on digits' non-test rows only (docs/cli.md has the table).
DEFAULTS = {"hidden": "256", "activation": "relu", "loss_classification": "softmax_cross_entropy",
            "loss_regression": "squared", "epochs": 30, "min_iterations": 2000,
            "lr_classification": 0.05, "lr_regression": 0.05, "batch_size": 4, "test_fraction": 0.2, "val_fraction": 0.1,
            "small_data": 50}
MAX_HISTORY = 2000  # rows of the training history kept in the model file


def _parse_hidden(text):
    text = (text or "").strip().lower()
    if text in ("", "none"):
        return []
    sizes = []
    for part in text.split(","):
        try:
            k = int(part)
        except ValueError:
            raise click.BadParameter(f"{part.strip()!r} is not a layer size; write e.g. 64,32", param_hint="--hidden") from None
        if k < 1:
            raise click.BadParameter(f"layer sizes must be >= 1 (an empty layer has no neurons); got {k}; "
                                     "write 'none' for no hidden layer", param_hint="--hidden")
        sizes.append(k)
    return sizes


def _parse_activations(text, n_hidden):
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if name not in ACTIVATIONS or not ACTIVATIONS[name].trainable:
            choices = ", ".join(a for a in ACTIVATIONS if ACTIVATIONS[a].trainable)
            raise click.BadParameter(f"{name!r} is not a trainable activation; choose from {choices}",
                                     param_hint="--activation")
    if len(names) == 1:
        return names * n_hidden, names[0]
    if len(names) != n_hidden:
        raise click.BadParameter(f"{len(names)} activations for {n_hidden} hidden layers; give one name, "
                                 "or one per hidden layer", param_hint="--activation")
    return names, names[-1]


@click.command("train", short_help="Train a network with the book's SGD and Backpropagation.", epilog=example('layerprop train iris --hidden 16 --epochs 50 -o iris.safetensors'))
@click.argument("data", required=False, metavar="[DATA]")
@click.option("--target", metavar="COL", help="Target column (name or index). Default: the last column.")
@click.option("--task", type=click.Choice(["auto", "classification", "regression"]), default="auto",
              show_default=True, help="Inferred from the target unless given.")
@click.option("-o", "--output", default="model.safetensors", show_default=True, metavar="MODEL",
              help="Where to write the trained model (written atomically).")
@click.option("--hidden", default=DEFAULTS["hidden"], show_default=True, metavar="K1,K2,...",
              help="Hidden layer sizes k_1..k_{T-1}; 'none' for no hidden layer.")
@click.option("--activation", default=DEFAULTS["activation"], show_default=True, metavar="NAME[,NAME...]",
              help="Hidden activation sigma (sigmoid, tanh, relu, leaky_relu, softplus, identity), or one per hidden layer.")
@click.option("--output-activation", type=click.Choice(["auto"] + [a for a in ACTIVATIONS if a != "sign"]),
              default="auto", show_default=True, help="Output layer activation (auto: what the loss needs).")
@click.option("--loss", type=click.Choice(["auto"] + list(LOSSES)), default="auto", show_default=True,
              help=f"auto: {DEFAULTS['loss_classification']} for classification (softmax outputs), the book's "
                   f"squared loss 1/2 ||o_T - y||^2 for regression.")
@click.option("--density", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Sparse E: keep each edge with this probability (seeded); phantom edges stay 0.")
@click.option("--band", type=click.IntRange(min=0), default=None, metavar="WIDTH",
              help="Sparse E: local connectivity, each neuron sees the previous layer within WIDTH.")
@click.option("--init", type=click.Choice(INITS), default="glorot", show_default=True,
              help="Initial weights w^(1) ('book': uniform in [-0.05, 0.05]).")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="tau, the number of SGD steps (instead of --epochs).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help=f"Passes over the training rows [default: {DEFAULTS['epochs']}, and at least "
                   f"{DEFAULTS['min_iterations']} iterations].")
@click.option("--lr", "--step-size", "lr", type=click.FloatRange(0, min_open=True), default=None,
              help=f"Step size eta_1 [default: {DEFAULTS['lr_classification']}]." if DEFAULTS["lr_classification"] ==
              DEFAULTS["lr_regression"] else f"Step size eta_1 [default: {DEFAULTS['lr_classification']} for "
              f"classification, {DEFAULTS['lr_regression']} for regression].")
@click.option("--schedule", type=click.Choice(SCHEDULES), default="constant", show_default=True,
              help="Step sizes eta_i.")
@click.option("--l2", type=click.FloatRange(0), default=0.0, show_default=True,
              help="lambda of the book's update w <- w - eta (v + lambda w).")
@click.option("--clip-norm", type=click.FloatRange(0, min_open=True), default=None,
              help="Scale each step's gradient v_i down to this norm when it is larger.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS["batch_size"], show_default=True,
              help="Rows per step (1 is the book's SGD).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True,
              help="Update rule ('sgd' is the book's).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help=f"Validation share of the training rows [default: {DEFAULTS['val_fraction']}; 0 on data "
                   f"sets under {DEFAULTS['small_data']} rows].")
@click.option("--val", "val_file", metavar="FILE", default=None, help="Validation data from a file instead.")
@click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help=f"Held-out test share, split first (seeded, stratified) [default: {DEFAULTS['test_fraction']}; "
                   f"0 on data sets under {DEFAULTS['small_data']} rows].")
@click.option("--test", "test_file", metavar="FILE", default=None, help="Test data from a file instead.")
@click.option("--standardize/--no-standardize", default=True, show_default=True,
              help="Scale inputs to mean 0, variance 1 on the training rows (stored in the model).")
@click.option("--eval-every", type=click.IntRange(min=1), default=None,
              help="Evaluate on the validation set every N iterations [default: once per epoch].")
@click.option("--metric", type=click.Choice(["loss", "accuracy"]), default="loss", show_default=True,
              help="Validation score that picks the best iterate and drives early stopping.")
@click.option("--keep", type=click.Choice(["best", "last", "average"]), default=None,
              help="Which w^(i) to output [default: best on validation (the book), else last].")
@click.option("--early-stopping", is_flag=True, help="Stop when the validation score stops improving.")
@click.option("--patience", type=click.IntRange(min=1), default=10, show_default=True,
              help="Evaluations without improvement before early stopping.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the splits, initialization and sampling.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True,
              help="Weight dtype.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where to train: NumPy on the CPU, or torch on an NVIDIA GPU (needs torch with CUDA): the data "
                   "are moved there once and whole steps run in CUDA graphs.")
@click.option("--tf32", is_flag=True, help="With --device cuda: allow TF32 matrix products (faster, about 10 bits "
                                           "of mantissa) [default: strict float32].")
@click.option("--checkpoint", "checkpoint_dir", metavar="DIR", default=None,
              help="Write checkpoints to DIR during training.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Iterations between checkpoints [default: the evaluation interval].")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --checkpoint DIR.")
@distributed_options
@json_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.option("-v", "--verbose", is_flag=True, help="Print a line per evaluation.")
@friendly_errors
def train_command(data, target, task, output, hidden, activation, output_activation, loss, density, band,
                  init, iterations, epochs, lr, schedule, l2, clip_norm, batch_size, optimizer, val_fraction, val_file,
                  test_fraction, test_file, standardize, eval_every, metric, keep, early_stopping, patience, seed, dtype,
                  device, tf32, checkpoint_dir, checkpoint_every, resume, nproc, distributed, threads, as_json, quiet, verbose):
    """Train a layered network with the book's SGD and Backpropagation.

    With no DATA, trains on the bundled digits (8x8 images, 10 classes): one hidden layer of
    256 relu neurons, softmax cross-entropy, the book's SGD with minibatches of 4, a held-out
    20% test split; about 1 s of training on 2 cores. Prints the architecture,
    |E|, iterations, time and train/validation/test metrics, and writes MODEL with what
    predict, evaluate, trace and report need (scaling, classes, feature names, history).
    """
    _check_option_pairs(iterations, epochs, val_file, val_fraction, test_file, test_fraction, density, band,
                        metric, task, resume, checkpoint_dir)
    if nproc is not None:  # N local workers run this command with --distributed (cli/_distributed.py)
        return launch_train(click.get_current_context().params)
    _check_device(device, tf32, distributed, threads)
    hidden_sizes, hidden_acts = _parse_layers(hidden, activation)
    output = check_output_path(output, "model")
    started = time.perf_counter()

    source = DEFAULT_DATA if data is None else data
    ds = _load_training_data(source, target, task)
    sp = _split(ds, source, seed, test_file, test_fraction, val_file, val_fraction)
    mean, scale = _input_scaling(sp.X_fit, standardize)
    loss_name, lr, target_scaling = _loss_and_step_size(loss, lr, ds.task, standardize, sp.y_fit)

    net = _build_network(ds, hidden_sizes, hidden_acts, output_activation, loss_name, density, band, init, seed,
                         dtype)
    info = _model_info(ds, source, mean, scale, target_scaling)
    net.info = dict(info)
    model = Model(net, output)

    Xs_fit, Y_fit, sgd_kwargs = _sgd_inputs(
        model, sp, iterations=iterations, epochs=epochs, lr=lr, schedule=schedule, l2=l2, clip_norm=clip_norm,
        batch_size=batch_size, optimizer=optimizer, eval_every=eval_every, metric=metric, keep=keep,
        early_stopping=early_stopping, patience=patience, seed=seed, quiet=quiet, verbose=verbose,
        distributed=distributed, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume)
    result, train_time = _run_sgd(net, Xs_fit, Y_fit, sgd_kwargs, device, tf32, lr)
    if distributed and not is_writer():
        return  # rank 0 alone writes the model and prints

    net, model = _trained_model(result, info, output)
    metrics = _metrics(model, sp, result, train_time, ds.task, seed)
    _write_model(net, output, result, metrics, sp, hidden_sizes=hidden_sizes, density=density, band=band, init=init,
                 standardize=standardize, dtype=dtype, seed=seed, test_file=test_file, val_file=val_file)
    summary = _summary(output, ds, net, result, metrics, sp, batch_size, train_time,
                       total=time.perf_counter() - started)
    if as_json:
        echo_json(summary)
    elif not quiet:
        _print_summary(summary, ds, len(sp.y_fit), len(sp.y_val), len(sp.y_test))


def _check_option_pairs(iterations, epochs, val_file, val_fraction, test_file, test_fraction, density, band,
                        metric, task, resume, checkpoint_dir):
    """A UsageError for options that exclude or need each other."""
    if iterations is not None and epochs is not None:
        raise click.UsageError("give --iterations or --epochs, not both")
    if val_file is not None and val_fraction is not None:
        raise click.UsageError("give --val FILE or --val-fraction, not both")
    if test_file is not None and test_fraction is not None:
        raise click.UsageError("give --test FILE or --test-fraction, not both")
    if density is not None and band is not None:
        raise click.UsageError("give --density or --band, not both")
    if metric == "accuracy" and task == "regression":
        raise click.UsageError("--metric accuracy is for classification")
    if resume and checkpoint_dir is None:
        raise click.UsageError("--resume needs --checkpoint DIR")


def _check_device(device, tf32, distributed, threads):
    """Fail early (before reading any data) on process, --tf32 and --device options that cannot work."""
    check_processes(distributed, threads, device)
    if tf32 and device == "cpu":
        raise click.ClickException("--tf32 needs --device cuda (TF32 is a GPU matrix-product mode)")
    if device != "cpu":  # without CUDA: one Error: line, before reading any data
        resolve_device(device)


def _parse_layers(hidden, activation):
    """The hidden layer sizes and their activations from --hidden and --activation."""
    hidden_sizes = _parse_hidden(hidden)
    hidden_acts, _ = _parse_activations(activation, len(hidden_sizes)) if hidden_sizes else ([], None)
    if not hidden_sizes and "," in activation:
        raise click.BadParameter("one activation per hidden layer, but there is no hidden layer",
                                 param_hint="--activation")
    return hidden_sizes, hidden_acts


def _load_training_data(source, target, task):
    """The data set to train on, checked to have a target (and at least 2 classes when classifying)."""
    from ..data import DataError, load_data

    task_arg = None if task == "auto" else task
    ds = load_data(source, target=target, task=task_arg)
    if ds.y is None:
        raise DataError(f"{source}: has no target (an NPZ file needs an array 'y')")
    if ds.task == "classification" and len(ds.classes) < 2:
        raise DataError(f"{source}: column {ds.target_name!r} has a single class {ds.classes[0]!r}; "
                        "classification needs at least 2")
    return ds


def _input_scaling(X_fit, standardize):
    """The inputs' (mean, scale) on the training rows: 0 and 1 without --standardize."""
    d = X_fit.shape[1]
    mean, scale = np.zeros(d), np.ones(d)
    if standardize:
        mean, scale = _mean_std(X_fit)
        scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(mean)), scale, 1.0)
    return mean, scale


def _loss_and_step_size(loss, lr, task, standardize, y_fit):
    """The loss name, step size and target scaling (None but for standardized squared-loss regression)."""
    classify = task == "classification"
    target_scaling = None
    loss_name = loss if loss != "auto" else DEFAULTS["loss_classification" if classify else "loss_regression"]
    if lr is None:
        lr = DEFAULTS["lr_classification"] if classify else DEFAULTS["lr_regression"]
    if loss_name == "poisson" and classify:
        raise click.UsageError("--loss poisson is for regression (counts)")
    if not classify and loss_name in ("softmax_cross_entropy", "binary_cross_entropy"):
        raise click.UsageError(f"--loss {loss_name} is for classification; this target is regression")
    if not classify and loss_name == "squared" and standardize:
        y_mean, y_std = _mean_std(np.asarray(y_fit, dtype=np.float64))
        target_scaling = {"mean": float(y_mean), "scale": float(y_std or 1.0)}
    return loss_name, lr, target_scaling


def _build_network(ds, hidden_sizes, hidden_acts, output_activation, loss_name, density, band, init, seed, dtype):
    """The untrained network: its graph (dense, --density or --band), activations, loss and w^(1)."""
    import layerprop as lp

    classify = ds.task == "classification"
    k_out = len(ds.classes) if classify else 1
    sizes = [ds.X.shape[1]] + hidden_sizes + [k_out]
    if density is not None:
        graph = lp.LayeredGraph.random(sizes, density, seed=seed)  # graph.py keeps its stream apart from the init's
    elif band is not None:
        graph = lp.LayeredGraph.banded(sizes, band)
    else:
        graph = lp.LayeredGraph.dense(sizes)
    out_act = None if output_activation == "auto" else output_activation
    if out_act is None and loss_name == "squared":
        # the book applies sigma at the output too: a sigmoid for 0/1 (one-hot) targets;
        # a regression output is unbounded
        out_act = "sigmoid" if classify else "identity"
    return lp.Network(graph, activation=hidden_acts if hidden_sizes else "identity", output_activation=out_act,
                      loss=loss_name, seed=seed, dtype=dtype, init=init)


def _model_info(ds, source, mean, scale, target_scaling):
    """What predict, evaluate, trace and report need from the data: task, classes, names, scaling."""
    classify = ds.task == "classification"
    return {"task": ds.task, "classes": ds.classes if classify else None, "feature_names": list(ds.feature_names),
            "target_name": ds.target_name, "input_scaling": {"mean": mean.tolist(), "scale": scale.tolist()},
            "target_scaling": target_scaling, "data": {"source": str(source), "name": ds.name, "rows": ds.X.shape[0]}}


def _sgd_inputs(model, sp, *, iterations, epochs, lr, schedule, l2, clip_norm, batch_size, optimizer, eval_every,
                metric, keep, early_stopping, patience, seed, quiet, verbose, distributed, checkpoint_dir,
                checkpoint_every, resume):
    """The scaled training rows, their encoded targets, and lp.sgd's keyword arguments from the options."""
    n_fit = len(sp.y_fit)
    if iterations is None and epochs is None:
        steps_per_epoch = math.ceil(n_fit / batch_size)
        epochs = max(DEFAULTS["epochs"], math.ceil(DEFAULTS["min_iterations"] / steps_per_epoch))
    Xs_fit, Y_fit = model.scale_X(sp.X_fit), model.encode_targets(sp.y_fit)
    validation = None
    if len(sp.y_val):
        validation = (model.scale_X(sp.X_val), model.encode_targets(sp.y_val))
    kwargs = dict(iterations=iterations, epochs=epochs, step_size=lr, schedule=schedule, l2=l2, clip_norm=clip_norm,
                  batch_size=batch_size, optimizer=optimizer, validation=validation, eval_every=eval_every,
                  metric=metric, output=keep, early_stopping=early_stopping, patience=patience,
                  seed=seed, progress=False if quiet else None, verbose=verbose and not quiet, distributed=distributed)
    if checkpoint_dir is not None:
        kwargs.update(checkpoint=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume)
    return Xs_fit, Y_fit, kwargs


def _run_sgd(net, Xs_fit, Y_fit, kwargs, device, tf32, lr):
    """lp.sgd on the device (the result and its seconds); a divergence is one Error: line."""
    from ..sgd import DivergenceError, sgd

    if device != "cpu":  # the network on the GPU; lp.sgd moves the data there once
        net = to_device(net, device, tf32=tf32)
        kwargs["device"] = device
    t0 = time.perf_counter()
    try:
        result = sgd(net, Xs_fit, Y_fit, **kwargs)
    except DivergenceError as e:
        where = f" at iteration {e.iteration}" if getattr(e, "iteration", None) is not None else ""
        raise click.ClickException(f"training diverged{where} (a non-finite loss or weight); no model was "
                                   f"written. Try a smaller --lr than {lr:g}, or --clip-norm") from None
    return result, time.perf_counter() - t0


def _trained_model(result, info, output):
    """The trained network back in NumPy with the data's info, and its Model."""
    net = result.network.to("numpy")
    net.info = dict(info)
    return net, Model(net, output)


def _metrics(model, sp, result, train_time, task, seed):
    """Train/validation/test metrics and the run's iterations, best iterate and training time."""
    metrics = {"train": model.metrics(sp.X_fit, sp.y_fit)}
    if len(sp.y_val):
        metrics["validation"] = model.metrics(sp.X_val, sp.y_val)
    if len(sp.y_test):
        metrics["test"] = model.metrics(sp.X_test, sp.y_test)
        if task != "classification":
            metrics["test"]["sample"] = _residual_sample(sp.y_test, model.predict(sp.X_test), seed)
    metrics.update(best_iteration=result.best_iteration, best_score=_finite_or_none(result.best_score),
                   iterations=result.iterations, stopped_early=bool(result.stopped_early),
                   train_seconds=round(train_time, 3))
    return metrics


def _write_model(net, output, result, metrics, sp, *, hidden_sizes, density, band, init, standardize, dtype, seed,
                 test_file, val_file):
    """Save the model (atomically) with its recipe, metrics and thinned history in its info."""
    from ..io import save

    recipe = dict(result.recipe or {})
    recipe.update(hidden=hidden_sizes, activations=list(net.activation_names), loss=net.loss_name,
                  density=density, band=band, init=init, standardize=standardize, dtype=dtype, seed=seed,
                  test_fraction=sp.test_fraction, val_fraction=sp.val_fraction, test_file=test_file, val_file=val_file,
                  splits={"fit": len(sp.y_fit), "validation": len(sp.y_val), "test": len(sp.y_test)})
    net.info.update(recipe=recipe, metrics=metrics, history=_thin(result.history))
    save(net, output)


def _summary(output, ds, net, result, metrics, sp, batch_size, train_time, total):
    """The run's summary, as printed and as written by --json."""
    n_fit = len(sp.y_fit)
    return {"model": str(output), "data": ds.name, "task": ds.task, "sizes": list(net.k),
            "activations": list(net.activation_names), "loss": net.loss_name,
            "num_edges": net.graph.num_edges(), "iterations": result.iterations,
            "epochs": round(result.iterations * batch_size / max(n_fit, 1), 2),
            "train_seconds": round(train_time, 3), "total_seconds": round(total, 3),
            "best_iteration": result.best_iteration, "stopped_early": bool(result.stopped_early),
            "world_size": result.recipe.get("world_size", 1),
            "metrics": {k: _headline(v, ds.task) for k, v in metrics.items() if isinstance(v, dict)},
            "notes": sp.notes}


def _mean_std(A):
    """Mean and standard deviation of each column (axis 0), finite for any finite input: near
    the float64 limit (1e308) the plain formulas overflow, so such columns are divided by their
    largest |value| first."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = np.mean(A, axis=0), np.std(A, axis=0)
    bad = ~(np.isfinite(mean) & np.isfinite(std))
    if np.any(bad):
        amax = np.max(np.abs(A), axis=0)
        amax = np.where(amax > 0, amax, 1.0)
        Z = A / amax
        mean = np.where(bad, np.mean(Z, axis=0) * amax, mean)
        std = np.where(bad, np.std(Z, axis=0) * amax, std)
    return mean, std


class _Splits(NamedTuple):
    X_fit: np.ndarray
    y_fit: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_fraction: Optional[float]
    val_fraction: Optional[float]
    notes: list


def _split(ds, source, seed, test_file, test_fraction, val_file, val_fraction) -> _Splits:
    """The held-out test rows first, then validation rows from the rest (seeded, stratified by
    class), or rows from --test/--val files; data sets under DEFAULTS["small_data"] rows are not
    split unless a fraction is given."""
    from ..data import DataError, train_test_split_indices

    X, y, n = ds.X, ds.y, ds.X.shape[0]
    classify = ds.task == "classification"
    small = n < DEFAULTS["small_data"]
    notes = []
    tf = vf = None
    if test_file is not None:
        X_test, y_test = _read_split(test_file, ds)
        train_idx = np.arange(n)
    else:
        tf = test_fraction if test_fraction is not None else (0.0 if small else DEFAULTS["test_fraction"])
        if small and test_fraction is None:
            notes.append(f"no test split: {ds.name} has only {n} rows")
        train_idx, test_idx = train_test_split_indices(n, tf, seed, stratify=y if classify else None)
        X_test, y_test = X[test_idx], y[test_idx]
    if val_file is not None:
        X_val, y_val = _read_split(val_file, ds)
        fit_idx = train_idx
    else:
        vf = val_fraction if val_fraction is not None else (0.0 if small else DEFAULTS["val_fraction"])
        sub_fit, sub_val = train_test_split_indices(len(train_idx), vf, seed + 1,
                                                    stratify=y[train_idx] if classify else None)
        fit_idx, val_idx = train_idx[sub_fit], train_idx[sub_val]
        X_val, y_val = X[val_idx], y[val_idx]
    if classify:
        missing = sorted(set(map(str, ds.classes)) - set(map(str, np.unique(y[fit_idx]))))
        if missing:
            raise DataError(f"{source}: class(es) {', '.join(missing)} have no training rows after the "
                            "test/validation split; use a smaller --test-fraction/--val-fraction")
    return _Splits(X[fit_idx], y[fit_idx], X_val, y_val, X_test, y_test, tf, vf, notes)


def _read_split(path, ds):
    from ..data import DataError, load_data

    other = load_data(path, target=ds.target_name, task=ds.task)
    missing = [f for f in ds.feature_names if f not in other.feature_names]
    if missing:
        raise DataError(f"{path}: missing feature column(s) {missing[:5]} of the training data")
    X = other.X[:, [other.feature_names.index(f) for f in ds.feature_names]]
    return X, other.y


def _finite_or_none(x):
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _thin(history, limit=MAX_HISTORY):
    """At most ``limit`` rows of the history (evenly spaced, the last kept), JSON-ready."""
    rows = list(history or [])
    if len(rows) > limit:
        keep = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
        rows = [rows[i] for i in keep]
    return [{k: _finite_or_none(v) if isinstance(v, float) else v for k, v in dict(r).items()} for r in rows]


def _residual_sample(y_true, y_pred, seed, limit=1000):
    """(true, predicted) pairs of at most ``limit`` test rows, for the report's residual plot."""
    idx = np.arange(len(y_true))
    if len(idx) > limit:
        idx = np.sort(np.random.default_rng(seed).choice(idx, limit, replace=False))
    return {"y_true": np.asarray(y_true, dtype=float)[idx].tolist(),
            "y_pred": np.asarray(y_pred, dtype=float)[idx].tolist()}


def _headline(m, task):
    return {k: m.get(k) for k in HEADLINE[task] if k in m}


def _print_summary(s, ds, n_fit, n_val, n_test):
    arch = "-".join(map(str, s["sizes"]))
    echo = click.echo
    echo(f"data        {ds.name}: {ds.X.shape[0]} rows x {ds.X.shape[1]} features, {s['task']}"
         + (f", {len(ds.classes)} classes" if ds.classes else "")
         + f" (fit {n_fit} / validation {n_val} / test {n_test})")
    echo(f"network     {arch}  activations {','.join(s['activations'])}  loss {s['loss']}  |E| = {s['num_edges']}")
    stop = f", stopped early; best at {s['best_iteration']}" if s["stopped_early"] else (
        f", best on validation at {s['best_iteration']}" if s["best_iteration"] is not None and n_val else "")
    procs = f" on {s['world_size']} processes" if s["world_size"] > 1 else ""
    echo(f"training    {s['iterations']} iterations ({s['epochs']:g} epochs) in {s['train_seconds']:.1f} s{procs}{stop}")
    for split in ("train", "validation", "test"):
        if split in s["metrics"]:
            parts = [f"{k} {format_metric(k, v)}" for k, v in s["metrics"][split].items()]
            echo(f"{split:<11} " + "  ".join(parts))
    for note in s["notes"]:
        echo(f"note        {one_line(note)}")
    echo(f"model       {s['model']}")


@click.command("datasets", epilog=example('layerprop datasets'))
@json_option
@friendly_errors
def datasets_command(as_json):
    """List the bundled data sets (usable wherever DATA is expected).
    """
    from ..data import list_datasets

    rows = list_datasets()
    if as_json:
        echo_json([{"name": n, "task": t, "description": d} for n, t, d in rows])
        return
    width = max(len(n) for n, _, _ in rows)
    for name, task, description in rows:
        click.echo(f"{name:<{width}}  {task:<14}  {description}")
