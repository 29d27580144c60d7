"""Training cases shared by the torchrun script (sgd_cases.py) and tests/test_distributed.py:
each is run distributed under torchrun and in one process, and the results compared."""

import numpy as np

import layerprop as lp


def data(n=61, seed=0):
    """A small 3-class problem (n rows of 5 features), one-hot targets, positive sample weights."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.8).astype(int) + (X[:, 2] > 0.5)
    Y = np.eye(3)[y]
    r = rng.uniform(0.2, 2.0, size=n)
    return X, Y, r


def network(density=0.6, dtype="float64"):
    """5-7-4-3 with phantom edges (a random E), sigmoid hidden layers, softmax cross-entropy."""
    graph = lp.LayeredGraph.random([5, 7, 4, 3], density, seed=3)
    return lp.Network(graph, activation="sigmoid", loss="softmax_cross_entropy", seed=1, dtype=dtype)


X, Y, R = data()
X_VAL, Y_VAL, _ = data(23, seed=5)
BASE = dict(iterations=40, batch_size=7, step_size=0.3, seed=11, progress=False)
CASES = {
    "sgd_masks_l2": dict(BASE, l2=0.01),
    "momentum_weights": dict(BASE, optimizer="momentum", sample_weight=True),
    "nesterov_l2_weights": dict(BASE, optimizer="nesterov", l2=0.003, sample_weight=True),
    "adam_l2": dict(BASE, optimizer="adam", step_size=0.02, l2=0.001, regularize_bias=False),
    "epochs_partial_batch": dict(BASE, iterations=None, epochs=4, batch_size=10, clip_norm=0.5),
    "validation_best_accuracy": dict(BASE, iterations=60, validation=True, eval_every=5, metric="accuracy"),
    "early_stopping": dict(BASE, iterations=300, step_size=2.0, validation=True, eval_every=3,
                           early_stopping=True, patience=3),
    "early_stopping_train": dict(BASE, iterations=200, step_size=1.5, eval_every=4, early_stopping=True,
                                 patience=2, tol=1e-3),
    "average_invscaling": dict(BASE, output="average", schedule="invscaling", optimizer="momentum"),
}


def kwargs(case):
    """lp.sgd keyword arguments of a case (the data arguments filled in)."""
    kw = dict(CASES[case])
    if kw.pop("sample_weight", False):
        kw["sample_weight"] = R
    if kw.pop("validation", False):
        kw["validation"] = (X_VAL, Y_VAL)
    return kw


def summary(result):
    """What the comparison looks at: weights, decisions and the history's figures."""
    net = result.network
    return {"W": [np.asarray(w) for w in net.W], "b": [np.asarray(v) for v in net.b],
            "iterations": result.iterations, "best_iteration": result.best_iteration,
            "best_score": result.best_score, "stop_reason": result.stop_reason,
            "history": [{k: v for k, v in row.items() if k != "elapsed"} for row in result.history]}
