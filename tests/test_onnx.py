"""ONNX export: onnxruntime's outputs match layerprop's within 1e-5."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_diabetes, load_iris, make_multilabel_classification

import layerprop as lp

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def run(onx, X):
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"X": X})))


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


CLASSIFIERS = {
    "multiclass-relu": (dict(hidden_layer_sizes=(8, 4)), None),
    "multiclass-tanh-float32": (dict(hidden_layer_sizes=(6,), activation="tanh"), np.float32),
    "per-layer": (dict(hidden_layer_sizes=(6, 5), activation=["logistic", "leaky_relu"]), None),
    "book-squared-sigmoid": (dict(hidden_layer_sizes=(6,), loss="squared", activation="logistic"), None),
    "sparse-masks": (dict(hidden_layer_sizes=(12,), connectivity=0.4), None),
    "softplus": (dict(hidden_layer_sizes=(5,), activation="softplus"), None),
}


@pytest.mark.parametrize("params,dtype", CLASSIFIERS.values(), ids=CLASSIFIERS.keys())
def test_classifier(iris, params, dtype):
    X, y = iris
    X = X.astype(dtype or np.float64)
    clf = lp.MLPClassifier(max_iter=60, random_state=0, **params).fit(X, y)
    out = run(lp.to_onnx(clf), X)
    assert_allclose(out["probabilities"], clf.predict_proba(X), atol=1e-5)
    assert_array_equal(out["label"], clf.predict(X))


@pytest.mark.parametrize("labels", [np.array(["setosa", "versicolor", "virginica"]), np.array([-1.0, 0.0, 2.0])],
                         ids=["strings", "floats"])
def test_class_labels(iris, labels):
    X, y = iris
    clf = lp.MLPClassifier((5,), solver="lbfgs", max_iter=50, random_state=0).fit(X, labels[y])
    assert_array_equal(run(lp.to_onnx(clf), X)["label"], clf.predict(X))


def test_binary(iris):
    X, y = iris
    clf = lp.MLPClassifier((5,), max_iter=60, random_state=0).fit(X, y == 2)
    out = run(lp.to_onnx(clf), X)
    assert out["probabilities"].shape == (150, 2)
    assert_allclose(out["probabilities"], clf.predict_proba(X), atol=1e-5)
    assert_array_equal(out["label"], clf.predict(X))


def test_multilabel():
    X, Y = make_multilabel_classification(n_samples=60, n_classes=3, random_state=0)
    clf = lp.MLPClassifier((6,), max_iter=40, random_state=0).fit(X, Y)
    out = run(lp.to_onnx(clf), X.astype(np.float64))
    assert_allclose(out["probabilities"], clf.predict_proba(X), atol=1e-5)
    assert_array_equal(out["label"], clf.predict(X))


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor(loss):
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:150], y[:150] / 100
    reg = lp.MLPRegressor(loss=loss, hidden_layer_sizes=(7,), max_iter=50, random_state=0).fit(X, y)
    out = run(lp.to_onnx(reg), X)
    assert_allclose(out["variable"].ravel(), reg.predict(X), rtol=1e-5, atol=1e-5)


def test_network_with_scaling_info_and_file(tmp_path):
    rng = np.random.default_rng(0)
    net = lp.Network(lp.LayeredGraph.dense([3, 5, 2]), activation="tanh", output_activation="identity", seed=0)
    mean, scale = rng.normal(size=3), rng.uniform(0.5, 2, 3)
    net.info.update(input_scaling={"mean": mean.tolist(), "scale": scale.tolist()},
                    target_scaling={"mean": [1.0, -2.0], "scale": [3.0, 0.5]}, task="regression")
    X = rng.normal(size=(20, 3))
    path = tmp_path / "net.onnx"
    onx = lp.to_onnx(net, path)
    assert path.exists()
    expected = net.predict((X - mean) / scale) * np.array([3.0, 0.5]) + np.array([1.0, -2.0])
    assert_allclose(run(onx, X)["variable"], expected, atol=1e-10)


def test_network_classifier_info():
    net = lp.Network(lp.LayeredGraph.dense([4, 3, 3]), activation="relu", loss="softmax_cross_entropy", seed=1)
    net.info.update(classes=["a", "b", "c"], task="classification")
    X = np.random.default_rng(1).normal(size=(10, 4))
    out = run(lp.to_onnx(net), X)
    logits = net.predict(X)
    assert_array_equal(out["label"], np.array(["a", "b", "c"])[logits.argmax(1)])


def test_unfitted_is_an_error():
    with pytest.raises(ValueError, match="fitted"):
        lp.to_onnx(lp.MLPClassifier())


def test_model_file(iris, tmp_path):
    X, y = iris
    clf = lp.MLPClassifier((5,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
    path = tmp_path / "clf.safetensors"
    from layerprop.io import save

    save(clf, path)
    out = run(lp.to_onnx(path), X)
    assert_allclose(out["probabilities"], clf.predict_proba(X), atol=1e-5)
    assert_array_equal(out["label"], clf.predict(X))
