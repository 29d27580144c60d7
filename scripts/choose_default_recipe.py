"""Choose the recipe of ``layerprop train`` with no arguments, without looking at its test rows.

The procedure (issue 5), fixed before any candidate was scored:

1. The candidate grid below, ``CANDIDATES``, is defined up front: the book's SGD (plain ``sgd``,
   one candidate with momentum), glorot initialization, standardized inputs, constant step size;
   the axes are hidden width (64/128/256), one or two hidden layers, the hidden activation
   (sigmoid/tanh/relu), the loss (the book's squared loss with sigmoid outputs, or softmax
   cross-entropy), l2 (0 or 1e-4), epochs, step size and batch size.
2. The rows the default run holds out for testing are removed first, with the CLI's own split
   code (``layerprop.cli.train._split`` with the default seed 0 and test fraction 0.2); only the
   remaining 1,437 rows (what the default run uses for fit + validation) are used for choosing.
3. Each candidate is scored by 5-fold stratified cross-validation (scikit-learn's
   ``StratifiedKFold``, shuffled with random_state 0) on those rows. In each fold the command
   itself trains: ``layerprop train FOLD_TRAIN.npz --test FOLD_HELDOUT.npz <candidate options>``,
   i.e. exactly as the CLI trains by default: a 10% validation split of the fold's training rows
   (seeded, stratified), standardization fitted on the remaining fit rows, and the iterate best
   on that validation split by loss is kept. The fold's held-out fifth is scored once by the
   kept model (accuracy), and never used for anything else.
4. The winner is the best mean CV accuracy; candidates within 0.2 percentage points of the best
   mean are ties, won by the cheapest (fewest mean training seconds per fold).
5. Only after choosing, the chosen recipe is trained as the default run would (no DATA: digits,
   the default split) and its test accuracy is printed once; then, as information only, the
   test accuracy of the chosen recipe and of the command's default over seeds 1-20 (each seed
   another test split, initialization and sampling order).

Run (about 4 minutes on 2 idle cores; it printed the table in docs/cli.md)::

    python scripts/choose_default_recipe.py

CPU work is niced (os.nice(19)) and runs in one process, one candidate and one fold at a time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from sklearn.model_selection import StratifiedKFold

from layerprop.cli import cli
from layerprop.cli.train import DEFAULTS, _split
from layerprop.data import load_data

SEED = 0          # the default run's --seed (splits, initialization, sampling)
FOLDS = 5
TIE = 0.002       # ties: within 0.2 percentage points of the best mean CV accuracy
SEEDS = 20        # after choosing: the test accuracy over seeds 1..SEEDS is printed too

SQ, CE = "squared", "softmax_cross_entropy"
# name: (hidden, activation, loss, optimizer, lr, batch size, epochs, l2)
CANDIDATES = {
    # the book's loss: squared loss on one-hot targets, sigmoid outputs
    "sq-64-sigmoid (old dflt)": ("64", "sigmoid", SQ, "sgd", 0.5, 4, 30, 0.0),
    "sq-128-sigmoid":           ("128", "sigmoid", SQ, "sgd", 0.5, 4, 30, 0.0),
    "sq-256-sigmoid":           ("256", "sigmoid", SQ, "sgd", 0.5, 4, 30, 0.0),
    "sq-256-sigmoid-e60":       ("256", "sigmoid", SQ, "sgd", 0.5, 4, 60, 0.0),
    "sq-128-sigmoid-l2":        ("128", "sigmoid", SQ, "sgd", 0.5, 4, 30, 1e-4),
    "sq-64,64-sigmoid-e60":     ("64,64", "sigmoid", SQ, "sgd", 0.5, 4, 60, 0.0),
    "sq-128-tanh":              ("128", "tanh", SQ, "sgd", 0.1, 4, 30, 0.0),
    "sq-128-sigmoid-b1":        ("128", "sigmoid", SQ, "sgd", 0.1, 1, 30, 0.0),
    # softmax cross-entropy
    "ce-64-tanh":               ("64", "tanh", CE, "sgd", 0.05, 4, 30, 0.0),
    "ce-128-tanh":              ("128", "tanh", CE, "sgd", 0.05, 4, 30, 0.0),
    "ce-256-tanh":              ("256", "tanh", CE, "sgd", 0.05, 4, 30, 0.0),
    "ce-128-relu":              ("128", "relu", CE, "sgd", 0.05, 4, 30, 0.0),
    "ce-256-relu":              ("256", "relu", CE, "sgd", 0.05, 4, 30, 0.0),
    "ce-128-sigmoid":           ("128", "sigmoid", CE, "sgd", 0.2, 4, 30, 0.0),
    "ce-256-sigmoid-e60":       ("256", "sigmoid", CE, "sgd", 0.2, 4, 60, 0.0),
    "ce-128-tanh-l2":           ("128", "tanh", CE, "sgd", 0.05, 4, 30, 1e-4),
    "ce-256-relu-l2":           ("256", "relu", CE, "sgd", 0.05, 4, 30, 1e-4),
    "ce-128,64-relu-e60":       ("128,64", "relu", CE, "sgd", 0.05, 4, 60, 0.0),
    "ce-128-tanh-b16-e60":      ("128", "tanh", CE, "sgd", 0.1, 16, 60, 0.0),
    "ce-128-tanh-momentum":     ("128", "tanh", CE, "momentum", 0.01, 4, 30, 0.0),
}

# Round 2 (session 3), written after round 1 had been scored and before any of these was run:
# round 1's best CV mean (97.4%) sits too close to the issue's 97% line for a 360-row test split,
# so this round tries what usually generalizes better on small image data: stronger L2, wider
# layers, the average of the iterates (--keep average), a smaller validation carve-out (more rows
# to fit), larger batches with more epochs, a decaying step size, and Adam. Same rule, same folds;
# the winner is taken over both rounds. A 9th entry holds extra options.
ROUND2 = {
    "ce-256-relu-l2e-3":        ("256", "relu", CE, "sgd", 0.05, 4, 30, 1e-3),
    "ce-256-relu-l2e-2":        ("256", "relu", CE, "sgd", 0.05, 4, 30, 1e-2),
    "ce-512-relu-l2e-3":        ("512", "relu", CE, "sgd", 0.05, 4, 30, 1e-3),
    "ce-256-tanh-l2e-3":        ("256", "tanh", CE, "sgd", 0.05, 4, 30, 1e-3),
    "ce-256-relu-avg":          ("256", "relu", CE, "sgd", 0.05, 4, 30, 0.0, ["--keep", "average"]),
    "ce-256-relu-l2e-3-avg":    ("256", "relu", CE, "sgd", 0.05, 4, 30, 1e-3, ["--keep", "average"]),
    "ce-256-relu-val5":         ("256", "relu", CE, "sgd", 0.05, 4, 30, 0.0, ["--val-fraction", "0.05"]),
    "ce-256-relu-l2e-3-val5":   ("256", "relu", CE, "sgd", 0.05, 4, 30, 1e-3, ["--val-fraction", "0.05"]),
    "ce-256-relu-cos":          ("256", "relu", CE, "sgd", 0.1, 4, 30, 0.0, ["--schedule", "cosine"]),
    "ce-256-relu-l2e-3-cos":    ("256", "relu", CE, "sgd", 0.1, 4, 30, 1e-3, ["--schedule", "cosine"]),
    "ce-256-relu-b16-e100":     ("256", "relu", CE, "sgd", 0.1, 16, 100, 1e-3),
    "ce-256-relu-acc":          ("256", "relu", CE, "sgd", 0.05, 4, 30, 1e-3, ["--metric", "accuracy"]),
    "ce-256,128-relu-l2e-3":    ("256,128", "relu", CE, "sgd", 0.05, 4, 30, 1e-3),
    "ce-256-relu-adam":         ("256", "relu", CE, "adam", 0.001, 16, 60, 1e-3),
    "sq-256-sigmoid-l2e-3":     ("256", "sigmoid", SQ, "sgd", 0.5, 4, 30, 1e-3),
    "ce-256-relu-b1":           ("256", "relu", CE, "sgd", 0.01, 1, 30, 1e-3),
}
CANDIDATES.update(ROUND2)


def options(c):
    hidden, act, loss, opt, lr, b, epochs, l2, *extra = c
    return ["--hidden", hidden, "--activation", act, "--loss", loss, "--optimizer", opt, "--lr", str(lr),
            "--batch-size", str(b), "--epochs", str(epochs), "--l2", str(l2), "--seed", str(SEED),
            *(extra[0] if extra else [])]


def train(args):
    result = CliRunner().invoke(cli, ["train", *map(str, args), "--json", "-q"])
    if result.exit_code != 0:
        raise RuntimeError(f"layerprop train {' '.join(map(str, args))}: exit {result.exit_code}\n"
                           f"{result.stdout}\n{result.stderr}\n{result.exception!r}")
    return json.loads(result.stdout)


def main():
    try:
        os.nice(19)
    except OSError:
        pass
    ds = load_data("digits")
    # the default run's split: test rows first (seed 0, fraction DEFAULTS["test_fraction"]); with
    # val_fraction 0 the "fit" rows are all the non-test rows, which the default run divides
    # into fit + validation. The test rows (sp.X_test, sp.y_test) are not used below.
    sp = _split(ds, "digits", SEED, None, None, None, 0.0)
    assert sp.test_fraction == DEFAULTS["test_fraction"] and len(sp.y_val) == 0
    assert len(sp.y_fit) + len(sp.y_test) == len(ds.y)
    X, y = sp.X_fit, sp.y_fit
    del sp
    print(f"choosing on the {len(y)} non-test rows of digits ({len(ds.y) - len(y)} test rows excluded); "
          f"{len(CANDIDATES)} candidates, {FOLDS}-fold stratified CV", flush=True)

    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(X, y))
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k, (tr, ho) in enumerate(folds):
            np.savez(tmp / f"train{k}.npz", X=X[tr], y=y[tr])
            np.savez(tmp / f"heldout{k}.npz", X=X[ho], y=y[ho])
        for name, c in CANDIDATES.items():
            accs, secs = [], []
            for k in range(FOLDS):
                s = train([tmp / f"train{k}.npz", "--test", tmp / f"heldout{k}.npz",
                           "-o", tmp / "m.safetensors", *options(c)])
                accs.append(s["metrics"]["test"]["accuracy"])  # the fold's held-out rows
                secs.append(s["train_seconds"])
            rows.append((name, float(np.mean(accs)), float(np.std(accs)), float(np.mean(secs))))
            print(f"  {name:<26} {100 * rows[-1][1]:6.2f}% +- {100 * rows[-1][2]:.2f}  "
                  f"{rows[-1][3]:5.1f} s/fold", flush=True)

    best = max(r[1] for r in rows)
    tied = [r for r in rows if r[1] >= best - TIE]
    chosen = min(tied, key=lambda r: r[3])
    print(f"\n{'candidate':<26} {'CV accuracy':>17}  {'s/fold':>6}")
    for r in sorted(rows, key=lambda r: -r[1]):
        mark = " <- chosen" if r is chosen else (" (tie)" if r in tied else "")
        print(f"{r[0]:<26} {100 * r[1]:6.2f}% +- {100 * r[2]:4.2f}  {r[3]:6.1f}{mark}")
    print(f"\nbest mean CV accuracy {100 * best:.2f}%; ties (within {100 * TIE:.1f} points): "
          f"{', '.join(r[0] for r in tied)}; chosen: {chosen[0]} (the cheapest of them)")
    print(f"CV time {time.perf_counter() - started:.0f} s")

    # -- only now: the chosen recipe as the default run (no DATA: digits, default split) --------
    c = CANDIDATES[chosen[0]]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = train(["-o", Path(tmp) / "model.safetensors", *options(c)])
        wall = time.perf_counter() - t0
    acc = s["metrics"]["test"]["accuracy"]
    n_test = len(ds.y) - len(y)
    print(f"\nchosen recipe: layerprop train {' '.join(options(c))}")
    print(f"sizes {s['sizes']}  iterations {s['iterations']}  training {s['train_seconds']:.1f} s  "
          f"(whole command {wall:.1f} s in-process)")
    print(f"test accuracy {100 * acc:.2f}% ({round(acc * n_test)}/{n_test})")

    # -- and over other seeds (each --seed draws another test split, initialization and order):
    # how far the seed-0 figure is from what the recipe gives in general. Reported, not used.
    print(f"\ntest accuracy over seeds 1-{SEEDS} (split, initialization and sampling all change with --seed):")
    for name, args in ((f"chosen ({chosen[0]})", options(c)), ("the command's default (no options)", [])):
        args = [a for i, a in enumerate(args) if a != "--seed" and (i == 0 or args[i - 1] != "--seed")]
        accs = []
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(1, SEEDS + 1):
                r = train(["-o", Path(tmp) / "m.safetensors", *args, "--seed", seed])
                accs.append(r["metrics"]["test"]["accuracy"])
        a = np.array(accs)
        print(f"  {name}: mean {100 * a.mean():.2f}%, min {100 * a.min():.2f}%, max {100 * a.max():.2f}%, "
              f">= 97% in {int((a >= 0.97).sum())} of {SEEDS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
