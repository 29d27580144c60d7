"""MLPClassifier and MLPRegressor: scikit-learn's behaviour (checked against scikit-learn itself)
and the book's options (l2, masks, per-layer activations, squared loss with sigmoid outputs)."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import neural_network as sk
from sklearn.datasets import load_diabetes, load_iris, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import layerprop as lp

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def binary(iris):
    X, y = iris
    return X, (y == 2).astype(int)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X)[:200], y[:200] / 100


def _max_diff(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a, b))


# -- scikit-learn's numbers, exactly ---------------------------------------------------------------
SOLVERS = {
    "adam": dict(solver="adam"),
    "sgd-nesterov": dict(solver="sgd"),
    "sgd-momentum": dict(solver="sgd", nesterovs_momentum=False),
    "sgd-book-invscaling": dict(solver="sgd", momentum=0, learning_rate="invscaling", learning_rate_init=0.1),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", batch_size=16),
    "adam-alpha": dict(solver="adam", alpha=0.1, batch_size=32),
    "lbfgs": dict(solver="lbfgs", max_iter=5),  # L-BFGS amplifies rounding (packing order): few iterations
}


@pytest.mark.parametrize("params", SOLVERS.values(), ids=SOLVERS.keys())
def test_classifier_matches_scikit_learn(iris, params):
    X, y = iris
    kw = {"hidden_layer_sizes": (8, 5), "random_state": 0, "max_iter": 40, **params}
    ours, theirs = lp.MLPClassifier(**kw).fit(X, y), sk.MLPClassifier(**kw).fit(X, y)
    tol = 1e-6 if params["solver"] == "lbfgs" else 1e-12
    assert _max_diff(ours.coefs_, theirs.coefs_) < tol
    assert _max_diff(ours.intercepts_, theirs.intercepts_) < tol
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-8)
    if params["solver"] != "lbfgs":
        assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
        assert ours.t_ == theirs.t_


@pytest.mark.parametrize("params", [dict(solver="adam"), dict(solver="lbfgs"), dict(solver="adam", loss="poisson"),
                                    dict(solver="sgd", loss="poisson", learning_rate_init=0.01)],
                         ids=["adam", "lbfgs", "poisson-adam", "poisson-sgd"])
def test_regressor_matches_scikit_learn(diabetes, params):
    X, y = diabetes
    kw = dict(hidden_layer_sizes=(8,), random_state=0, max_iter=40, **params)
    ours, theirs = lp.MLPRegressor(**kw).fit(X, y), sk.MLPRegressor(**kw).fit(X, y)
    assert _max_diff(ours.coefs_, theirs.coefs_) < 1e-9
    assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9)
    assert ours.out_activation_ == theirs.out_activation_


def test_early_stopping_binary_matches_scikit_learn(binary):
    X, y = binary
    kw = dict(hidden_layer_sizes=(6,), random_state=1, max_iter=200, early_stopping=True, n_iter_no_change=3)
    ours, theirs = lp.MLPClassifier(**kw).fit(X, y), sk.MLPClassifier(**kw).fit(X, y)
    assert ours.validation_scores_ == theirs.validation_scores_
    assert ours.best_validation_score_ == theirs.best_validation_score_
    assert _max_diff(ours.coefs_, theirs.coefs_) < 1e-12


# -- attributes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_fitted_attributes(iris, solver):
    X, y = iris
    clf = lp.MLPClassifier((7, 4), solver=solver, max_iter=20, random_state=0).fit(X, y)
    assert_array_equal(clf.classes_, [0, 1, 2])
    assert (clf.n_features_in_, clf.n_layers_, clf.n_outputs_, clf.out_activation_) == (4, 4, 3, "softmax")
    assert isinstance(clf.network_, lp.Network) and clf.network_.k == (4, 7, 4, 3)
    assert clf.n_iter_ == 20
    if solver != "lbfgs":
        assert len(clf.loss_curve_) == 20 and clf.t_ == 20 * 150
        assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.predict_proba(X).shape == (150, 3)
    assert_allclose(clf.predict_proba(X).sum(axis=1), 1)
    assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X))


@pytest.mark.parametrize("est", [lp.MLPClassifier((5, 3), max_iter=5), lp.MLPRegressor(hidden_layer_sizes=(5, 3), max_iter=5)],
                         ids=["classifier", "regressor"])
def test_coefs_are_the_transposed_network(iris, est):
    X, y = iris
    est.fit(X, y)
    for t in range(est.network_.T):
        assert_array_equal(est.coefs_[t], est.network_.W[t].T)
        assert_array_equal(est.intercepts_[t], est.network_.b[t])
        assert est.coefs_[t].shape == (est.network_.k[t], est.network_.k[t + 1])


def test_setting_coefs_writes_the_network(iris):
    X, y = iris
    clf = lp.MLPClassifier((5,), max_iter=5, random_state=0).fit(X, y)
    new = [np.zeros_like(c) for c in clf.coefs_]
    clf.coefs_ = new
    assert all(not w.any() for w in clf.network_.W)


# -- partial_fit -----------------------------------------------------------------------------------
def test_partial_fit_returns_self_and_is_deterministic(iris):
    X, y = iris
    a, b = (lp.MLPClassifier((6,), random_state=3) for _ in range(2))
    for block in np.array_split(np.arange(150), 5):
        assert a.partial_fit(X[block], y[block], classes=[0, 1, 2]) is a
        b.partial_fit(X[block], y[block], classes=[0, 1, 2])
    assert _max_diff(a.coefs_, b.coefs_) == 0


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_blocks_match_scikit_learn(iris, solver):
    X, y = iris
    rng = np.random.default_rng(0)
    order = rng.permutation(150)
    ours, theirs = lp.MLPClassifier((6,), solver=solver, random_state=3), sk.MLPClassifier((6,), solver=solver, random_state=3)
    for block in np.array_split(order, 4):
        ours.partial_fit(X[block], y[block], classes=[0, 1, 2])
        theirs.partial_fit(X[block], y[block], classes=[0, 1, 2])
    assert _max_diff(ours.coefs_, theirs.coefs_) < 1e-12
    assert ours.t_ == theirs.t_ == 150 and ours.n_iter_ == 1


def test_partial_fit_once_equals_one_epoch_of_fit(iris):
    X, y = iris
    a = lp.MLPClassifier((6,), random_state=0, max_iter=1).fit(X, y)
    b = lp.MLPClassifier((6,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    assert _max_diff(a.coefs_, b.coefs_) == 0


def test_partial_fit_with_early_stopping(binary):
    X, y = binary
    clf = lp.MLPClassifier((6,), random_state=0, early_stopping=True, n_iter_no_change=2, tol=0.5)
    for _ in range(10):
        clf.partial_fit(X, y, classes=[0, 1])
    assert 1 <= len(clf.validation_scores_) < 10  # stopped: later calls are no-ops
    stopped = [w.copy() for w in clf.network_.W]
    clf.partial_fit(X, y)
    assert _max_diff(stopped, clf.network_.W) == 0


def test_partial_fit_first_call_needs_classes(iris):
    X, y = iris
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        lp.MLPClassifier().partial_fit(X, y)


@pytest.mark.parametrize("cls", [lp.MLPClassifier, lp.MLPRegressor])
def test_partial_fit_not_for_lbfgs(cls):
    with pytest.raises(AttributeError, match="partial_fit"):
        cls(solver="lbfgs").partial_fit


# -- the book: masks, l2, squared loss with sigmoid outputs ---------------------------------------
def _masks(rng, sizes, density=0.5):
    masks = []
    for t in range(len(sizes) - 1):
        m = rng.random((sizes[t + 1], sizes[t])) < density
        m[:, 0] = True
        m[0, :] = True
        masks.append(m)
    return masks


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_connectivity_masks_stay_exactly_sparse(iris, solver):
    X, y = iris
    masks = _masks(np.random.default_rng(0), [4, 9, 3])
    clf = lp.MLPClassifier((9,), solver=solver, connectivity=masks, max_iter=30, random_state=0, alpha=0.01, l2=0.01)
    clf.fit(X, y)
    for t, m in enumerate(masks):
        W = clf.network_.W[t]
        assert np.all(W[~m] == 0.0)  # phantom edges: exactly 0
        assert np.count_nonzero(W[m]) == m.sum()  # real edges: moved, not zeroed
        assert_array_equal(clf.coefs_[t] != 0, m.T)


def test_lbfgs_moves_only_real_edges(iris):
    X, y = iris
    masks = _masks(np.random.default_rng(1), [4, 6, 3], density=0.4)
    start = lp.MLPClassifier((6,), solver="lbfgs", connectivity=masks, max_iter=1, random_state=0).fit(X, y)
    done = lp.MLPClassifier((6,), solver="lbfgs", connectivity=masks, max_iter=50, random_state=0).fit(X, y)
    for t, m in enumerate(masks):
        assert np.all(done.network_.W[t][~m] == 0.0)
        assert np.all(done.network_.W[t][m] != start.network_.W[t][m])


def test_connectivity_density_is_seeded(iris):
    X, y = iris
    a = lp.MLPClassifier((20,), connectivity=0.3, max_iter=3, random_state=5).fit(X, y)
    b = lp.MLPClassifier((20,), connectivity=0.3, max_iter=3, random_state=5).fit(X, y)
    assert a.network_.graph == b.network_.graph
    assert a.network_.graph.num_edges(include_bias=False) < 4 * 20 + 20 * 3


def test_l2_is_the_books_update(iris):
    """One full-batch step of solver='sgd', momentum=0, alpha=0 is w - eta (v + l2 w), v the mean gradient."""
    X, y = iris
    eta, lam = 0.1, 0.05
    clf = lp.MLPClassifier((5,), solver="sgd", momentum=0, alpha=0, l2=lam, learning_rate_init=eta,
                           batch_size=150, shuffle=False, max_iter=1, random_state=0)
    # w^(1): the same random_state and a step of 1e-300, which leaves every weight as it was
    start = lp.MLPClassifier((5,), solver="sgd", momentum=0, alpha=0, learning_rate_init=1e-300, batch_size=150,
                             shuffle=False, max_iter=1, random_state=0).fit(X, y).network_
    clf.fit(X, y)
    Y = np.eye(3)[y]
    v = start.backprop(X, Y)
    for t in range(start.T):
        assert_allclose(clf.network_.W[t], start.W[t] - eta * (v.W[t] + lam * start.W[t]), rtol=1e-12, atol=1e-15)
        assert_allclose(clf.network_.b[t], start.b[t] - eta * (v.b[t] + lam * start.b[t]), rtol=1e-12, atol=1e-15)


def test_books_squared_loss_with_sigmoid_outputs(iris):
    X, y = iris
    clf = lp.MLPClassifier((10,), activation="logistic", loss="squared", output_activation="sigmoid",
                           solver="lbfgs", max_iter=300, random_state=0).fit(X, y)
    assert clf.network_.loss_name == "squared" and clf.network_.activation_names == ("sigmoid", "sigmoid")
    assert clf.out_activation_ == "logistic"
    assert clf.score(X, y) > 0.9
    assert_allclose(clf.predict_proba(X).sum(axis=1), 1)


def test_per_layer_activations(iris):
    X, y = iris
    clf = lp.MLPClassifier((6, 5), activation=["tanh", "relu"], max_iter=20, random_state=0).fit(X, y)
    assert clf.network_.activation_names == ("tanh", "relu", "identity")


def test_regressor_sigmoid_output_squared_loss():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = 1 / (1 + np.exp(-X[:, 0]))
    reg = lp.MLPRegressor(loss="squared", hidden_layer_sizes=(5,), output_activation="sigmoid", solver="lbfgs",
                          random_state=0).fit(X, y)
    assert reg.network_.activation_names[-1] == "sigmoid" and reg.score(X, y) > 0.9
    with pytest.raises(ValueError, match="outside"):
        lp.MLPRegressor(output_activation="sigmoid").fit(X, y + 2)


# -- dtypes, sparse X, weights, validation data ----------------------------------------------------
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_float32_in_float32_out(iris, solver):
    X, y = iris
    clf = lp.MLPClassifier((5,), solver=solver, max_iter=10, random_state=0).fit(X.astype(np.float32), y)
    assert all(c.dtype == np.float32 for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32
    clf64 = lp.MLPClassifier((5,), solver=solver, max_iter=10, random_state=0, dtype="float64").fit(X.astype(np.float32), y)
    assert clf64.coefs_[0].dtype == np.float64


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_X_equals_dense(iris, fmt):
    X, y = iris
    dense = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(X, y)
    sparse = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(sp.csr_matrix(X).asformat(fmt), y)
    assert _max_diff(dense.coefs_, sparse.coefs_) < 1e-12
    assert_allclose(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X))


def test_class_weight_equals_sample_weight(iris):
    X, y = iris
    cw = {0: 3.0, 1: 1.0, 2: 0.5}
    a = lp.MLPClassifier((5,), max_iter=10, random_state=0, class_weight=cw).fit(X, y)
    b = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(X, y, sample_weight=np.array([cw[c] for c in y]))
    assert _max_diff(a.coefs_, b.coefs_) == 0


def test_class_weight_balanced(iris):
    X, y = iris
    keep = np.r_[0:50, 50:60, 100:150]
    a = lp.MLPClassifier((5,), max_iter=10, random_state=0, class_weight="balanced").fit(X[keep], y[keep])
    counts = np.bincount(y[keep])
    sw = (len(keep) / (3 * counts))[y[keep]]
    b = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(X[keep], y[keep], sample_weight=sw)
    assert _max_diff(a.coefs_, b.coefs_) < 1e-14
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        lp.MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_sample_weight_zero_removes_rows(iris):
    X, y = iris
    sw = np.ones(150)
    sw[::3] = 0
    a = lp.MLPClassifier((5,), solver="lbfgs", max_iter=30, random_state=0).fit(X, y, sample_weight=sw)
    b = lp.MLPClassifier((5,), solver="lbfgs", max_iter=30, random_state=0).fit(X[sw > 0], y[sw > 0])
    assert _max_diff(a.coefs_, b.coefs_) < 1e-8


def test_sample_weight_matches_scikit_learn(iris):
    X, y = iris
    sw = np.random.default_rng(0).uniform(0.2, 2, 150)
    kw = dict(hidden_layer_sizes=(5,), max_iter=15, random_state=0, batch_size=32)
    a = lp.MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    b = sk.MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    assert _max_diff(a.coefs_, b.coefs_) < 1e-12


def test_validation_data(iris, binary):
    X, y = iris
    Xv, yv = X[::2], y[::2]
    clf = lp.MLPClassifier((5,), max_iter=15, random_state=0, validation_data=(Xv, yv)).fit(X, y)
    assert len(clf.validation_scores_) == 15 and clf.best_validation_score_ == max(clf.validation_scores_)
    es = lp.MLPClassifier((5,), max_iter=300, random_state=0, early_stopping=True, n_iter_no_change=3,
                          validation_data=(Xv, yv)).fit(X, y)
    assert es.n_iter_ < 300 and es.score(Xv, yv) == es.best_validation_score_
    with pytest.raises(ValueError, match="validation_data must be a tuple"):
        lp.MLPClassifier(validation_data=(Xv,)).fit(X, y)


# -- multilabel, multi-output, poisson --------------------------------------------------------------
def test_multilabel():
    X, Y = make_multilabel_classification(n_samples=100, n_classes=4, random_state=0)
    ours = lp.MLPClassifier((10,), max_iter=30, random_state=0).fit(X, Y)
    theirs = sk.MLPClassifier((10,), max_iter=30, random_state=0).fit(X, Y)
    assert ours.out_activation_ == "logistic" and ours.network_.loss_name == "binary_cross_entropy"
    assert ours.predict(X).shape == (100, 4) and ours.predict_proba(X).shape == (100, 4)
    assert _max_diff(ours.coefs_, theirs.coefs_) < 1e-12


def test_multi_output_regression(diabetes):
    X, y = diabetes
    Y = np.c_[y, -2 * y]
    ours = lp.MLPRegressor(hidden_layer_sizes=(6,), max_iter=20, random_state=0).fit(X, Y)
    theirs = sk.MLPRegressor(hidden_layer_sizes=(6,), max_iter=20, random_state=0).fit(X, Y)
    assert ours.predict(X).shape == (200, 2)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


def test_poisson(diabetes):
    X, y = diabetes
    reg = lp.MLPRegressor(loss="poisson", hidden_layer_sizes=(6,), solver="lbfgs", max_iter=200, random_state=0).fit(X, y)
    assert reg.out_activation_ == "exp" and reg.network_.loss_name == "poisson"
    assert np.all(reg.predict(X) > 0) and reg.score(X, y) > 0.3
    with pytest.raises(ValueError, match="negative"):
        lp.MLPRegressor(loss="poisson").fit(X, y - 3)


# -- scikit-learn tools, pandas, pickling -----------------------------------------------------------
def test_pipeline_gridsearch_cross_val(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), lp.MLPClassifier((5,), solver="lbfgs", max_iter=100, random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2], "mlpclassifier__l2": [0.0, 1e-3]}, cv=2).fit(X, y)
    assert set(grid.best_params_) == {"mlpclassifier__alpha", "mlpclassifier__l2"}


def test_pandas_feature_names(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = lp.MLPClassifier((5,), max_iter=5, random_state=0).fit(df, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df.rename(columns={"a": "z"}))
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.predict(X)


def test_pickle_and_continue(iris):
    X, y = iris
    a = lp.MLPClassifier((5,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    b = pickle.loads(pickle.dumps(a))
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    assert _max_diff(a.coefs_, b.coefs_) == 0


def test_warm_start_continues(iris):
    X, y = iris
    a = lp.MLPClassifier((5,), max_iter=10, random_state=0, warm_start=True).fit(X, y)
    first = [c.copy() for c in a.coefs_]
    a.fit(X, y)
    assert _max_diff(first, a.coefs_) > 0
    with pytest.raises(ValueError, match="warm_start can only be used"):
        a.fit(X[y < 2], y[y < 2])


# -- bad input: scikit-learn's messages, and ours naming the parameter ------------------------------
BAD = {
    "hidden-negative": (dict(hidden_layer_sizes=(3, -1)), "hidden_layer_sizes must be > 0"),
    "solver": (dict(solver="newton"), "The 'solver' parameter"),
    "alpha": (dict(alpha=-1), "The 'alpha' parameter"),
    "l2": (dict(l2=-0.1), "The 'l2' parameter"),
    "activation-name": (dict(activation="sign"), "The 'activation' parameter"),
    "activation-list-length": (dict(hidden_layer_sizes=(3,), activation=["relu", "tanh"]), "list of 2 names"),
    "connectivity-shape": (dict(hidden_layer_sizes=(3,), connectivity=[np.ones((3, 2)), np.ones((3, 3))]),
                           "connectivity masks give layer sizes"),
    "density": (dict(connectivity=1.5), "The 'connectivity' parameter"),
    "log-loss-output": (dict(output_activation="tanh"), "needs output_activation='softmax'"),
    "dtype": (dict(dtype="float16"), "The 'dtype' parameter"),
    "engine": (dict(engine="warp"), "engine='warp' is not known"),
}


@pytest.mark.parametrize("params,match", BAD.values(), ids=BAD.keys())
def test_bad_parameters(iris, params, match):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        lp.MLPClassifier(max_iter=2, **params).fit(X, y)


def test_bad_data(iris):
    X, y = iris
    clf = lp.MLPClassifier((3,), max_iter=2)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(np.where(X > 2, np.nan, X), y)
    with pytest.raises(ValueError, match="Found input variables with inconsistent numbers of samples"):
        clf.fit(X, y[:-1])
    clf.fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4 features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        clf.partial_fit(X, y + 1)


def test_cuda_without_a_gpu_is_a_clear_error(iris):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, y = iris
    with pytest.raises(ValueError, match="device='cuda'"):
        lp.MLPClassifier(device="cuda").fit(X, y)


def test_non_finite_weights_raise_and_are_not_kept(diabetes):
    X, y = diabetes
    reg = lp.MLPRegressor(hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=1e3, momentum=0, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
            reg.fit(X * 1e3, y * 1e6)
    assert all(np.all(np.isfinite(w)) for w in reg.network_.W)


def test_convergence_warning(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        with warnings.catch_warnings():
            warnings.simplefilter("default", ConvergenceWarning)
            lp.MLPClassifier((3,), max_iter=2).fit(X, y)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_torch_network_path_gives_the_numpy_numbers(iris, solver, monkeypatch):
    """The device code path (the network's arrays in torch) runs on CPU tensors in CI."""
    torch = pytest.importorskip("torch")
    from layerprop import estimators

    X, y = iris
    cpu = lp.MLPClassifier((6,), solver=solver, max_iter=15, random_state=0).fit(X, y)
    monkeypatch.setattr(estimators._BaseMLP, "_to_device", lambda self, net: net.to(torch))
    dev = lp.MLPClassifier((6,), solver=solver, max_iter=15, random_state=0).fit(X, y)
    assert isinstance(dev.network_.W[0], torch.Tensor)
    assert _max_diff(cpu.coefs_, dev.coefs_) < 1e-12
    assert_allclose(dev.predict_proba(X), cpu.predict_proba(X), atol=1e-12)
