"""Training from a memory-mapped .npy gives the same numbers as from the in-memory array."""

import numpy as np
import pytest

import layerprop as lp
from layerprop.engines import NumpyEngine, numba_single, select_engine
from layerprop.engines.numpy_fast import book_update_
from layerprop.memmap import PagedMemmap, open_npy


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 300)]
    np.save(tmp_path / "X.npy", X)
    return X, Y, tmp_path / "X.npy"


def test_open_npy_reads_only_rows_asked_for(data):
    X, _, path = data
    M = open_npy(path)
    assert isinstance(M, PagedMemmap) and isinstance(M, np.ndarray) and M.shape == X.shape
    rows = np.array([5, 3, 3, 299, -1, 0])
    for key in (rows, [2, 1], slice(10, 20), slice(290, 400), slice(5, 5)):
        got = M[key]
        assert type(got) is np.ndarray
        np.testing.assert_array_equal(got, X[key])
    np.testing.assert_array_equal(M[:, 3], X[:, 3])
    np.testing.assert_array_equal(M[7], X[7])
    with pytest.raises(IndexError):
        M[np.array([300])]


def test_open_npy_bad_path(tmp_path):
    with pytest.raises(ValueError, match="path="):
        open_npy(tmp_path / "missing.npy")
    with pytest.raises(TypeError):
        open_npy(3)


def minibatch_epochs(X, Y, net, batch, epochs=2, eta=0.5, lam=1e-3):
    """Minibatch SGD with the NumPy engine: rows from a seeded permutation, the book's update."""
    eng, rng = select_engine(net, batch_size=batch, optimizer="sgd"), np.random.default_rng(1)
    for _ in range(epochs):
        perm = rng.permutation(X.shape[0])
        for i in range(0, len(perm), batch):
            rows = perm[i:i + batch]
            _, total, gW, gb = eng.gradient_sums(net, X[rows], Y[rows], None)
            for t in range(net.T):
                book_update_(net.W[t], gW[t] / total, eta, lam)
                book_update_(net.b[t], gb[t] / total, eta, lam)
    return net


def test_minibatch_training_from_memmap_is_identical(data):
    X, Y, path = data
    net = lp.Network(lp.LayeredGraph.dense([12, 8, 3]), loss="softmax_cross_entropy", seed=0, dtype="float32")
    a = minibatch_epochs(X, Y, net.copy(), 32)
    b = minibatch_epochs(open_npy(path, release_bytes=4096), Y, net.copy(), 32)
    for u, v in zip(a.W + a.b, b.W + b.b):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_book_sgd_from_memmap_is_identical(data, engine, monkeypatch):
    if engine == "numba" and not numba_single.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(numba_single, "MEMMAP_CHUNK", 64)  # several chunks of rows read from the file
    X, Y, path = data
    net = lp.Network(lp.LayeredGraph.dense([12, 8, 3]), seed=0, dtype="float32")
    rows = np.random.default_rng(2).integers(0, 300, 500)
    a, b = net.copy(), net.copy()
    eng = select_engine(net, batch_size=1, engine=engine)
    la = eng.run_book_sgd(a, X, Y, rows, np.full(500, 0.1), 1e-3)
    lb = eng.run_book_sgd(b, open_npy(path), Y, rows, np.full(500, 0.1), 1e-3)
    assert la == pytest.approx(lb, rel=1e-12)  # the loss sum is added up chunk by chunk
    for u, v in zip(a.W + a.b, b.W + b.b):
        np.testing.assert_array_equal(u, v)


def test_gradient_sums_on_memmap_views(data):
    """A slice view of the mapping (not a copy) works too."""
    X, Y, path = data
    net = lp.Network(lp.LayeredGraph.dense([12, 8, 3]), loss="softmax_cross_entropy", seed=0, dtype="float32")
    M = open_npy(path)
    view = M[:, :][10:60]
    want = NumpyEngine().gradient_sums(net, X[10:60], Y[10:60], None)
    got = NumpyEngine().gradient_sums(net, view, Y[10:60], None)
    assert got[0] == want[0]
    M.release_pages()
