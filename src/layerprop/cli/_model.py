"""A trained model as the command line sees it: the network plus what ``net.info`` records
(input scaling, classes, feature names, task, target scaling), and the metrics it reports.

``train`` writes these info keys; ``predict``, ``evaluate``, ``trace`` and ``report`` read them.
A network saved without them (e.g. from the Python API) still works: inputs unscaled, features
taken by position, outputs as o_T.
"""

from __future__ import annotations

import numpy as np

from ..losses import softmax


def label_key(v):
    """A label as a comparable Python scalar: 3, 3.0, np.int64(3) and True/1 agree; text stays text."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


class Model:
    """A loaded network and its info; converts raw features to o_T and o_T to predictions."""

    def __init__(self, net, path="model"):
        self.net, self.path = net, str(path)
        info = net.info or {}
        self.info = info
        self.classes = info.get("classes")
        self.task = info.get("task") or ("classification" if self.classes else "regression")
        self.feature_names = info.get("feature_names")
        self.target_name = info.get("target_name")
        scaling = info.get("input_scaling") or {}
        k0 = net.k[0]
        self.mean = np.asarray(scaling.get("mean", np.zeros(k0)), dtype=np.float64)
        self.scale = np.asarray(scaling.get("scale", np.ones(k0)), dtype=np.float64)
        if self.mean.shape != (k0,) or self.scale.shape != (k0,) or not (self.scale > 0).all():
            raise ValueError(f"{path}: info.input_scaling does not fit the {k0} inputs of the network")
        ts = info.get("target_scaling") or {}
        self.y_mean, self.y_scale = float(ts.get("mean", 0.0)), float(ts.get("scale", 1.0))
        if self.task == "classification" and not self.classes:
            self.classes = list(range(net.k[-1]))
        if self.feature_names is not None and len(self.feature_names) != k0:
            raise ValueError(f"{path}: info.feature_names lists {len(self.feature_names)} names "
                             f"but the network has {k0} inputs")

    # -- inputs -----------------------------------------------------------------------------
    def scale_X(self, X):
        """Standardize raw features as at training time: (x - mean) / scale."""
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale

    def check_X(self, X, where):
        """Raise DataError unless X has the model's number of feature columns."""
        from ..data import DataError

        if X.ndim != 2 or X.shape[1] != self.net.k[0]:
            got = X.shape[1] if X.ndim == 2 else "?"
            raise DataError(f"{where}: has {got} feature column(s); the model expects {self.net.k[0]}"
                            + (f" ({_names(self.feature_names)})" if self.feature_names else ""))
        return X

    def read_features(self, source):
        """The model's feature columns from a data file or bundled data set name, in order."""
        from ..data import load_features

        X, _ = load_features(source, feature_names=self.feature_names)
        return self.check_X(X, source)

    def read_labelled(self, source):
        """(X, y) from a labelled data file: the model's features in order, and its target."""
        from ..data import DataError, load_data

        target = self.target_name
        try:
            ds = load_data(source, target=target, task=self.task)
        except DataError:
            if target is None:
                raise
            ds = load_data(source, target=None, task=self.task)  # bundled sets fix their target
            if ds.target_name != target:
                raise
        X = ds.X
        if self.feature_names is not None:
            missing = [f for f in self.feature_names if f not in ds.feature_names]
            if missing and ds.X.shape[1] == len(self.feature_names) and ds.name.endswith(".npz"):
                missing = []  # an NPZ without names: by position
            elif missing:
                raise DataError(f"{source}: missing feature column(s) the model was trained on: {_names(missing)}")
            else:
                X = ds.X[:, [ds.feature_names.index(f) for f in self.feature_names]]
        return self.check_X(X, source), ds.y

    # -- outputs ----------------------------------------------------------------------------
    def outputs(self, X):
        """o_T for raw features X (scaled first), float64."""
        return np.asarray(self.net.predict(self.scale_X(X)), dtype=np.float64)

    def scores(self, O):
        """Class scores from o_T: softmax for softmax cross-entropy, else o_T normalized to sum 1."""
        if self.net.loss_name == "softmax_cross_entropy":
            return softmax(O)
        O = np.clip(O, 0.0, None)
        s = O.sum(axis=1, keepdims=True)
        return np.where(s > 0, O / np.where(s > 0, s, 1.0), 1.0 / O.shape[1])

    def decode(self, O):
        """Predictions from o_T: class labels (argmax) or values (target scaling undone)."""
        if self.task == "classification":
            if O.shape[1] == 1:  # one sigmoid output: class 1 when o_T >= 1/2
                idx = (O[:, 0] >= 0.5).astype(int)
            else:
                idx = O.argmax(axis=1)
            return np.asarray([self.classes[i] for i in idx], dtype=object)
        out = O[:, 0] if O.shape[1] == 1 else O
        if self.net.loss_name == "poisson":
            return np.exp(out)
        return out * self.y_scale + self.y_mean

    def predict(self, X):
        return self.decode(self.outputs(X))

    def encode_targets(self, y):
        """The training targets Y for labels or values y (one-hot rows; scaled values)."""
        if self.task == "classification":
            index = {label_key(c): n for n, c in enumerate(self.classes)}
            Y = np.zeros((len(y), self.net.k[-1]))
            for r, v in enumerate(y):
                Y[r, index[label_key(v)]] = 1.0
            return Y
        y = np.asarray(y, dtype=np.float64)
        if self.net.loss_name == "poisson":
            return y.reshape(-1, 1)
        return ((y - self.y_mean) / self.y_scale).reshape(-1, 1)

    def metrics(self, X, y):
        """Metrics of the predictions on (X, y), in the original label/value space."""
        return compute_metrics(self.task, y, self.predict(X), self.classes)


def _names(names, limit=8):
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def compute_metrics(task, y_true, y_pred, classes=None) -> dict:
    """Classification: accuracy, macro F1, confusion matrix (rows true, columns predicted) and
    its labels; regression: R^2, MSE, MAE. Plain NumPy (no scikit-learn import)."""
    n = len(y_true)
    if task == "classification":
        labels = [label_key(c) for c in (classes or [])]
        for v in list(y_true) + list(y_pred):  # labels not seen in training still count
            if label_key(v) not in labels:
                labels.append(label_key(v))
        index = {c: n for n, c in enumerate(labels)}
        cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for t, p in zip(y_true, y_pred):
            cm[index[label_key(t)], index[label_key(p)]] += 1
        tp = np.diag(cm).astype(float)
        support, predicted = cm.sum(axis=1), cm.sum(axis=0)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
        present = support > 0
        return {"n": n, "accuracy": float(tp.sum() / n) if n else None,
                "f1_macro": float(f1[present].mean()) if present.any() else None,
                "confusion_matrix": cm.tolist(), "labels": labels}
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    resid = y_true - y_pred
    mse = float(np.mean(resid ** 2)) if n else None
    var = float(np.var(y_true)) if n else 0.0
    return {"n": n, "r2": (1.0 - mse / var) if n and var > 0 else None, "mse": mse,
            "mae": float(np.mean(np.abs(resid))) if n else None}


HEADLINE = {"classification": ("accuracy", "f1_macro"), "regression": ("r2", "mse", "mae")}
