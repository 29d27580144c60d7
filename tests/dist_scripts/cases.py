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


# -- the estimators ---------------------------------------------------------------------------------
y_CLASS, y_REG = Y.argmax(axis=1), X[:, 0] - X[:, 1] ** 2
ESTIMATORS = {
    "clf_sgd_masks_l2_weights": (lambda d: lp.MLPClassifier(
        (6,), solver="sgd", learning_rate_init=0.1, batch_size=9, max_iter=6, random_state=0, connectivity=0.7,
        l2=0.01, distributed=d), "fit", (X, y_CLASS, R)),
    "clf_adam_early_stopping": (lambda d: lp.MLPClassifier(
        (6,), solver="adam", learning_rate_init=0.05, batch_size=8, max_iter=30, early_stopping=True,
        validation_fraction=0.25, n_iter_no_change=2, random_state=4, distributed=d), "fit", (X, y_CLASS)),
    "reg_sgd_nesterov": (lambda d: lp.MLPRegressor(
        hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=0.02, batch_size=10, max_iter=5, random_state=1,
        distributed=d), "fit", (X, y_REG)),
    "clf_partial_fit": (lambda d: lp.MLPClassifier(
        (6,), solver="sgd", learning_rate_init=0.1, batch_size=7, random_state=2, distributed=d),
        "partial_fit", (X, y_CLASS)),
}


def run_estimator(name, distributed, unseeded=False):
    """Fit (or partial_fit on three blocks) one estimator case; its weights and decisions."""
    make, how, data = ESTIMATORS[name]
    est = make(distributed)
    if unseeded:
        est.set_params(random_state=None)
    if how == "fit":
        est.fit(data[0], data[1], *data[2:])
    else:
        for block in np.array_split(np.arange(len(data[0])), 3):
            est.partial_fit(data[0][block], data[1][block], classes=np.unique(data[1]))
    return {"W": [c.T for c in est.coefs_], "b": list(est.intercepts_), "iterations": est.n_iter_,
            "best_iteration": None, "stop_reason": None, "best_score": None,
            "history": [{"loss": v} for v in est.loss_curve_] + [{"val": v} for v in (est.validation_scores_ or [])]}
