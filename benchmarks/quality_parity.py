"""Quality and speed parity of lp.MLPClassifier / lp.MLPRegressor with scikit-learn's classes.

Same data split, same hyperparameters, same random_state, over several seeds: test accuracy
(classification) or R^2 (regression), and the mean fit time of each. Prints a Markdown table.

    python benchmarks/quality_parity.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn import neural_network as sk
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import layerprop as lp

DATASETS = {
    "iris": (datasets.load_iris, "classification"),
    "wine": (datasets.load_wine, "classification"),
    "breast_cancer": (datasets.load_breast_cancer, "classification"),
    "digits": (datasets.load_digits, "classification"),
    "diabetes": (datasets.load_diabetes, "regression"),
}
SETTINGS = {
    "adam (defaults)": dict(max_iter=300),
    "sgd, nesterov": dict(solver="sgd", learning_rate_init=0.01, max_iter=300),
    "lbfgs": dict(solver="lbfgs", max_iter=300),
}


def run(name, loader, task, setting, params, seeds):
    X, y = loader(return_X_y=True)
    rows = {"layerprop": [], "scikit-learn": []}
    times = {"layerprop": [], "scikit-learn": []}
    for seed in range(seeds):
        strat = y if task == "classification" else None
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=strat)
        sc = StandardScaler().fit(Xtr)
        Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)
        if task == "regression":
            ytr, yte = ytr / 100, yte / 100
        for lib, mod in (("layerprop", lp), ("scikit-learn", sk)):
            cls = mod.MLPClassifier if task == "classification" else mod.MLPRegressor
            est = cls(random_state=seed, **params)
            t = time.perf_counter()
            est.fit(Xtr, ytr)
            times[lib].append(time.perf_counter() - t)
            rows[lib].append(est.score(Xte, yte))
    a, b = np.array(rows["layerprop"]), np.array(rows["scikit-learn"])
    metric = "accuracy" if task == "classification" else "R^2"
    return (f"| {name} | {setting} | {metric} | {a.mean():.4f} ± {a.std():.4f} | {b.mean():.4f} ± {b.std():.4f} "
            f"| {np.abs(a - b).max():.1e} | {np.median(times['layerprop']) * 1e3:.0f} | "
            f"{np.median(times['scikit-learn']) * 1e3:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    threadpool_limits(1)  # one BLAS thread for both libraries: stable timings on a shared machine
    print(f"{args.seeds} seeds (0..{args.seeds - 1}): split 75/25 and random_state per seed; hidden_layer_sizes=(100,); "
          "fit times are medians, one BLAS thread\n")
    print("| data set | solver | metric | layerprop (mean ± sd) | scikit-learn (mean ± sd) | max abs diff "
          "| layerprop fit ms | scikit-learn fit ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (loader, task) in DATASETS.items():
        for setting, params in SETTINGS.items():
            print(run(name, loader, task, setting, params, args.seeds), flush=True)


if __name__ == "__main__":
    main()
