"""Robustness (issue 8): bad inputs through the scikit-learn estimators.

Each bad input to ``fit``, ``partial_fit`` and ``predict`` of ``lp.MLPClassifier`` and
``lp.MLPRegressor`` raises ``ValueError`` or ``TypeError`` (as scikit-learn's own MLPs do),
never another exception, and never leaves non-finite weights. Valid variants of an input
(object dtype holding numbers, numeric strings, lists, a DataFrame) fit to bitwise the same
weights as the plain float array.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import layerprop as lp

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 3))
Y_CLS = (X[:, 0] + X[:, 1] > 0).astype(int)
Y_REG = 2.0 * X[:, 0] - X[:, 2]

ESTIMATORS = {"classifier": (lambda **kw: lp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5,
                                                             random_state=0, **kw), Y_CLS),
              "regressor": (lambda **kw: lp.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5,
                                                         random_state=0, **kw), Y_REG)}


def _with(value, where=(2, 1)):
    A = X.astype(object)
    A[where] = value
    return A


BAD_X = {
    "nan": np.where(np.eye(24, 3) > 0, np.nan, X),
    "inf": np.where(np.eye(24, 3) > 0, np.inf, X),
    "-inf": np.where(np.eye(24, 3) > 0, -np.inf, X),
    "complex": X + 1j,
    "letters": np.full((24, 3), "a"),
    "string_in_object_column": _with("forty"),
    "dict_in_column": _with({"a": 1}),
    "list_in_column": _with([1, 2]),
    "none_in_object_column": _with(None),
    "0_rows": X[:0],
    "0_columns": X[:, :0],
    "1d": X[:, 0],
    "3d": X[:, :, None],
    "ragged_list": [[1.0, 2.0, 3.0]] * 23 + [[1.0]],
}


def _quiet(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on 5 iterations
        return f(*args, **kw)


def assert_finite(est):
    assert all(np.isfinite(np.asarray(w)).all() for w in est.network_.W)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize("case", list(BAD_X))
def test_fit_bad_X(kind, case):
    make, y = ESTIMATORS[kind]
    Xb = BAD_X[case]
    yb = y[:len(Xb)] if len(Xb) < len(y) else y
    with pytest.raises((ValueError, TypeError)):
        _quiet(make().fit, Xb, yb)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize("method", ["predict", "partial_fit", "score"])
@pytest.mark.parametrize("case", [*BAD_X, "transposed", "changed_feature_count", "1_column"])
def test_after_fit_bad_X(kind, method, case):
    make, y = ESTIMATORS[kind]
    fitted = _quiet(make().fit, X, y)
    before = [w.copy() for w in fitted.network_.W]
    Xb = {"transposed": X[:5].T, "changed_feature_count": np.ones((4, 4)), "1_column": X[:, :1]}.get(case)
    Xb = BAD_X[case] if Xb is None else Xb
    n = len(Xb) if not isinstance(Xb, np.ndarray) or Xb.ndim else 1
    with pytest.raises((ValueError, TypeError)):
        if method == "predict":
            fitted.predict(Xb)
        elif method == "score":
            fitted.score(Xb, y[:n])
        else:
            _quiet(fitted.partial_fit, Xb, y[:n])
    for w, w0 in zip(fitted.network_.W, before):  # a refused call changes nothing
        np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize("case", ["renamed", "reordered", "extra_column", "missing_column"])
def test_dataframe_columns_changed_at_predict(kind, case):
    make, y = ESTIMATORS[kind]
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    fitted = _quiet(make().fit, df, y)
    other = {"renamed": df.rename(columns={"a": "z"}), "reordered": df[["c", "b", "a"]],
             "extra_column": df.assign(d=1.0), "missing_column": df[["a", "b"]]}[case]
    with pytest.raises(ValueError, match="feature"):
        fitted.predict(other)


BAD_Y = {
    "nan": np.where(np.arange(24) == 3, np.nan, Y_REG),
    "inf": np.where(np.arange(24) == 3, np.inf, Y_REG),
    "too_short": Y_REG[:-1],
    "too_long": np.append(Y_REG, 1.0),
    "dicts": np.array([{}] * 24, dtype=object),
    "2d_wrong_rows": np.ones((23, 2)),
    "none": None,
}


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize("case", list(BAD_Y))
def test_fit_bad_y(kind, case):
    make, _ = ESTIMATORS[kind]
    yb = BAD_Y[case]
    if kind == "classifier" and case in ("nan", "inf"):
        yb = np.where(np.arange(24) == 3, yb[3], Y_CLS.astype(float))
    with pytest.raises((ValueError, TypeError)):
        _quiet(make().fit, X, yb)


def test_classifier_refuses_continuous_y():
    with pytest.raises(ValueError, match="(?i)unknown label type|continuous"):
        _quiet(ESTIMATORS["classifier"][0]().fit, X, Y_REG)


def test_regressor_refuses_letters_as_y():
    with pytest.raises(ValueError):
        _quiet(ESTIMATORS["regressor"][0]().fit, X, np.full(24, "a"))


@pytest.mark.parametrize("labels", [np.zeros(24, int), np.full(24, "only")], ids=["int", "str"])
def test_single_class_is_refused_or_predicted_everywhere(labels):
    """scikit-learn's contract (check_classifiers_one_label): a clear error naming the class
    count, or a model that predicts the one class."""
    try:
        fitted = _quiet(ESTIMATORS["classifier"][0]().fit, X, labels)
    except ValueError as e:
        assert "class" in str(e)
        return
    assert set(fitted.predict(X)) == {labels[0]}


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_partial_fit_changed_feature_count(kind):
    make, y = ESTIMATORS[kind]
    kw = {"classes": [0, 1]} if kind == "classifier" else {}
    est = _quiet(make().partial_fit, X, y, **kw)
    with pytest.raises(ValueError, match="features"):
        _quiet(est.partial_fit, np.ones((4, 4)), y[:4])


def test_partial_fit_unknown_class():
    est = _quiet(ESTIMATORS["classifier"][0]().partial_fit, X, Y_CLS, classes=[0, 1])
    with pytest.raises(ValueError):
        _quiet(est.partial_fit, X[:2], np.array([0, 7]))


VALID_X = {
    "object_dtype_numbers": X.astype(object),
    "numeric_strings": np.array([[repr(float(v)) for v in row] for row in X]),
    "list_of_lists": X.tolist(),
    "dataframe": pd.DataFrame(X, columns=["a", "b", "c"]),
    "fortran_order": np.asfortranarray(X),
}


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize("case", list(VALID_X))
def test_valid_variants_fit_as_the_plain_twin(kind, case):
    make, y = ESTIMATORS[kind]
    plain = _quiet(make().fit, X, y)
    other = _quiet(make().fit, VALID_X[case], y)
    for a, b in zip(plain.network_.W, other.network_.W):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_one_row_and_one_column(kind):
    make, y = ESTIMATORS[kind]
    if kind == "classifier":
        with pytest.raises(ValueError):  # one row is one class; sklearn also needs 2 for a split
            _quiet(make(early_stopping=True).fit, X[:1], y[:1])
    else:
        assert_finite(_quiet(make().fit, X[:1], y[:1]))
    assert_finite(_quiet(make().fit, X[:, :1], y))


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_step_size_1e6_ends_finite_or_raises(kind, solver):
    make, y = ESTIMATORS[kind]
    est = make(solver=solver, learning_rate_init=1e6)
    est.set_params(max_iter=30)
    try:
        _quiet(est.fit, X, y)
    except ValueError as e:
        assert "non-finite" in str(e)
        return
    assert_finite(est)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_huge_but_finite_features_end_finite_or_raise(kind):
    make, y = ESTIMATORS[kind]
    est = make()
    try:
        _quiet(est.fit, np.where(np.eye(24, 3) > 0, 1e308, X), y)
    except ValueError as e:
        assert "non-finite" in str(e) or "too large" in str(e)
        return
    assert_finite(est)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_zero_variance_feature_trains(kind):
    make, y = ESTIMATORS[kind]
    A = X.copy()
    A[:, 1] = 7.0
    est = _quiet(make().fit, A, y)
    assert_finite(est)
    assert np.isfinite(np.asarray(est.predict(A), dtype=float)).all()
