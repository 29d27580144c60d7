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


@pytest.mark.parametrize("kind", ["open_npy", "np.load"])
def test_sgd_keeps_a_memmap_on_disk(data, kind, monkeypatch, tmp_path):
    """lp.sgd on a memory-mapped X: the same weights as from memory, X is read in runs of rows
    (checks, hash) and by batch (the row reads), never as a whole, and resume accepts it."""
    import layerprop.memmap as lpm
    X, Y, path = data
    M = open_npy(path) if kind == "open_npy" else np.load(path, mmap_mode="r")
    monkeypatch.setattr(lpm, "CHUNK_BYTES", 40 * 12 * 4)  # 40 rows per run
    reads = []
    orig = lpm._RowFile.rows
    monkeypatch.setattr(lpm._RowFile, "rows", lambda self, idx: reads.append(len(idx)) or orig(self, idx))
    net = lp.Network(lp.LayeredGraph.dense([12, 8, 3]), loss="softmax_cross_entropy", seed=0, dtype="float32")
    kw = dict(epochs=2, batch_size=32, step_size=0.5, l2=1e-3, seed=3, progress=False)
    want = lp.sgd(net, X, Y, **kw)
    got = lp.sgd(net, M, Y, checkpoint=tmp_path / "ck", **kw)
    for u, v in zip(want.network.W + want.network.b, got.network.W + got.network.b):
        np.testing.assert_array_equal(u, v)
    assert reads and max(reads) <= 40 and sum(reads) >= 2 * 300  # checks + hash by runs; batches
    assert [r["train_loss"] for r in want.history] == [r["train_loss"] for r in got.history]
    more = lp.sgd(net, np.asarray(X), Y, checkpoint=tmp_path / "ck", resume=True, **{**kw, "epochs": 3})
    assert more.iterations == 3 * 10  # the in-memory copy hashes like the memmap: resumed


def test_sgd_memmap_checks(tmp_path):
    net = lp.Network(lp.LayeredGraph.dense([4, 3, 2]), seed=0, dtype="float32")
    bad = np.ones((20, 4), np.float32)
    bad[13, 2] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        lp.sgd(net, open_npy(tmp_path / "bad.npy"), np.zeros((20, 2)), iterations=2, progress=False)
    np.save(tmp_path / "wide.npy", np.ones((20, 5), np.float32))
    with pytest.raises(ValueError, match="X must have shape"):
        lp.sgd(net, np.load(tmp_path / "wide.npy", mmap_mode="r"), np.zeros((20, 2)), iterations=2, progress=False)
    np.save(tmp_path / "y.npy", np.zeros((19, 2)))
    with pytest.raises(ValueError, match="Y must have shape"):
        lp.sgd(net, np.ones((20, 4)), np.load(tmp_path / "y.npy", mmap_mode="r"), iterations=2, progress=False)
    np.save(tmp_path / "f64.npy", np.random.default_rng(0).random((20, 4)))  # another dtype: per batch
    a = lp.sgd(net, np.load(tmp_path / "f64.npy"), np.zeros((20, 2)), iterations=5, batch_size=4, progress=False)
    b = lp.sgd(net, open_npy(tmp_path / "f64.npy"), np.zeros((20, 2)), iterations=5, batch_size=4, progress=False)
    for u, v in zip(a.network.W + a.network.b, b.network.W + b.network.b):
        np.testing.assert_array_equal(u, v)


def test_data_hash_is_the_whole_bytes_digest(data):
    """The chunked digest equals sha256 over the bytes of the whole arrays (old checkpoints resume)."""
    import hashlib

    from layerprop.sgd import _data_hash
    X, Y, path = data
    h = hashlib.sha256()
    for a in (X, Y):
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    want = h.hexdigest()[:32]
    assert _data_hash(X, Y, None) == want
    assert _data_hash(open_npy(path), Y) == want
    assert _data_hash(np.load(path, mmap_mode="r"), Y) == want
    assert _data_hash(np.asfortranarray(X), Y) == want
    assert _data_hash(X[:, :], Y) == want and _data_hash(X, Y[:, ::-1][:, ::-1]) == want
    assert _data_hash(X[:299], Y) != want
