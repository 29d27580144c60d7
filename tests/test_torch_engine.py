"""The torch engine and the CUDA-graph trainer's eager path, on torch CPU tensors, against the
reference core (engines/reference.py) and optim.py."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _nets import DIFFERENTIABLE, LOSS_OUTPUTS, random_data, random_net, rel_err

from layerprop.engines import select_engine
from layerprop.engines.cuda_graph import CudaGraphEngine, CudaGraphTrainer
from layerprop.engines.reference import ReferenceEngine
from layerprop.engines.torch_engine import TorchEngine, supports
from layerprop.optim import get_optimizer
from layerprop.sgd import combine

TOL = {"float64": 1e-12, "float32": 2e-5}
LOSSES = LOSS_OUTPUTS + [("poisson", "identity")]


def _tensor(A, net):
    return None if A is None else torch.as_tensor(np.asarray(A), dtype=net.W[0].dtype)


def _case(activation="sigmoid", loss="squared", output="sigmoid", dtype="float64", bias=True, n=7, seed=0):
    net = random_net(activation=activation, loss=loss, output=output, dtype=dtype, bias=bias, seed=seed)
    X, Y = random_data(net, n=n, seed=seed, loss=loss)
    if loss == "poisson":
        Y = np.random.default_rng(seed).poisson(2.0, Y.shape).astype(float)
    return net, X.astype(dtype), Y.astype(dtype)


def _max_err(got, ref):
    pairs = list(zip(got[2], ref[2])) + [(g, r) for g, r in zip(got[3], ref[3]) if r is not None]
    errs = [rel_err(g.numpy(), r) for g, r in pairs]
    return max(errs + [abs(got[0] - ref[0]) / max(abs(ref[0]), 1e-300), abs(got[1] - ref[1]) / ref[1]])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss,output", LOSSES)
@pytest.mark.parametrize("activation", DIFFERENTIABLE)
def test_gradient_sums_equal_the_reference(activation, loss, output, dtype, weighted):
    net, X, Y = _case(activation, loss, output, dtype)
    r = np.random.default_rng(5).random(X.shape[0]).astype(dtype) if weighted else None
    ref = ReferenceEngine().gradient_sums(net, X, Y, r)
    tn = net.to(torch)
    got = TorchEngine().gradient_sums(tn, _tensor(X, tn), _tensor(Y, tn), _tensor(r, tn))
    assert _max_err(got, ref) <= TOL[dtype]


@pytest.mark.parametrize("bias", [True, False])
def test_without_bias_and_several_batch_sizes(bias):
    """Buffers are kept per batch size: 7, 3, 7 rows in turn still give the reference's numbers."""
    net, X, Y = _case(bias=bias, n=7)
    tn, eng = net.to(torch), TorchEngine()
    for rows in (slice(0, 7), slice(0, 3), slice(2, 7)):
        ref = ReferenceEngine().gradient_sums(net, X[rows], Y[rows], None)
        got = eng.gradient_sums(tn, _tensor(X[rows], tn), _tensor(Y[rows], tn), None)
        assert _max_err(got, ref) <= 1e-12
        assert (got[3][0] is None) == (not bias)


def test_phantom_entries_are_exactly_zero():
    net, X, Y = _case(activation="tanh")
    tn = net.to(torch)
    _, _, gW, gb = TorchEngine().gradient_sums(tn, _tensor(X, tn), _tensor(Y, tn), None)
    assert any(not bool(m.all()) for m in tn.masks)  # the case has phantom edges
    for t in range(tn.T):
        assert bool((gW[t][~tn.masks[t]] == 0).all())
        assert bool((gb[t][~tn.bias_masks[t]] == 0).all())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved(dtype):
    net, X, Y = _case(dtype=dtype)
    tn = net.to(torch)
    want = getattr(torch, dtype)
    _, _, gW, gb = TorchEngine().gradient_sums(tn, _tensor(X, tn), _tensor(Y, tn), None)
    assert all(w.dtype == want for w in gW + gb)
    assert TorchEngine().predict(tn, _tensor(X, tn)).dtype == want


def test_predict_equals_the_network():
    net, X, _ = _case(activation="softplus", loss="softmax_cross_entropy", output="identity")
    tn = net.to(torch)
    np.testing.assert_allclose(TorchEngine().predict(tn, _tensor(X, tn)).numpy(), net.predict(X), rtol=1e-12)


def test_selected_for_torch_networks_and_not_for_numpy_or_custom():
    net, _, _ = _case()
    assert select_engine(net.to(torch)).name == "torch"
    assert select_engine(net.to(torch), engine="cuda_graph").name == "cuda_graph"
    assert not supports(net)
    custom = random_net(activation=(lambda a: a, lambda a: a * 0 + 1)).to(torch)
    assert not supports(custom)
    assert select_engine(custom).name == "reference"


def test_training_loop_uses_it_and_matches_the_reference():
    import layerprop as lp

    net, X, Y = _case(n=30)
    kw = {"iterations": 12, "batch_size": 5, "step_size": 0.2, "l2": 0.01}
    ref = lp.sgd(net, X, Y, engine="reference", **kw).network
    got = lp.sgd(net.to(torch), X, Y, **kw).network
    for a, b in zip(got.W, ref.W):
        assert rel_err(a.numpy(), b) <= 1e-12


# -- the CUDA-graph trainer, eager path (the step function a graph records) ----------------------
def _reference_steps(net, X, Y, r, rows, etas, opt):
    """k steps of lp's reference training: reference gradient sums, sgd.combine, optim.py's update."""
    total, wsum = 0.0, 0.0
    for rw, eta in zip(rows, etas):
        loss_sum, w_sum, gW, gb = ReferenceEngine().gradient_sums(net, X[rw], Y[rw], None if r is None else r[rw])
        _, gW, gb = combine(loss_sum, w_sum, gW, gb)
        opt.step(net, gW, gb, eta)
        total, wsum = total + loss_sum, wsum + w_sum
    return total, wsum


def _rows(n, b, seed=3):
    """Row indices for 11 steps: 7 of b rows, a partial batch, 3 of b rows."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, b) for _ in range(7)] + [rng.integers(0, n, b - 1)] + \
           [rng.integers(0, n, b) for _ in range(3)]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("loss,output", [("squared", "sigmoid"), ("softmax_cross_entropy", "identity")])
def test_trainer_equals_reference_steps(loss, output, optimizer, dtype, weighted):
    net = random_net(sizes=(5, 6, 4, 3), loss=loss, output=output, dtype=dtype, scale=0.5)
    X, Y = random_data(net, n=40, loss=loss)
    X, Y = X.astype(dtype), Y.astype(dtype)
    r = np.random.default_rng(4).random(40).astype(dtype) if weighted else None
    rows, etas = _rows(40, 4), list(np.linspace(0.3, 0.1, 11))
    tn = net.to(torch)
    ref_opt = get_optimizer(optimizer, net, lam=0.01)
    ref_loss, ref_wsum = _reference_steps(net, X, Y, r, rows, etas, ref_opt)

    tr = CudaGraphTrainer(tn, X, Y, 4, optimizer, steps_per_graph=3, sample_weight=r, lam=0.01)
    assert not tr.capture  # CPU: the same steps, eagerly
    loss1, w1 = tr.run(rows[:5], etas[:5])  # one block of 3, then 2 single steps
    loss2, w2 = tr.run(rows[5:], etas[5:])  # a block straddling the partial batch runs step by step
    assert tr.sync() is tn
    tol = TOL[dtype] * (10 if dtype == "float32" else 1)
    assert abs(loss1 + loss2 - ref_loss) <= tol * abs(ref_loss)
    assert abs(w1 + w2 - ref_wsum) <= tol * ref_wsum
    for a, b in zip(list(tn.W) + list(tn.b), list(net.W) + list(net.b)):
        assert a.dtype == getattr(torch, dtype)
        assert rel_err(a.numpy(), b) <= tol
    assert tr.opt.t == ref_opt.t == 11
    for name, (Ws, bs) in ref_opt.state.items():
        for a, b in zip(tr.opt.state[name][0] + tr.opt.state[name][1], Ws + bs):
            if b is not None:
                assert rel_err(a.numpy(), b) <= tol


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("variant", ["soft_labels", "bias_not_regularized", "no_bias", "dense"])
def test_trainer_flat_update_variants_equal_reference_steps(variant, optimizer):
    """The trainer's flat update on the cases the main test leaves out: softmax targets whose rows do
    not sum to 1, lam on the coefficients only, a network without biases, a dense network."""
    net = random_net(sizes=(5, 6, 4, 3), loss="softmax_cross_entropy", output="identity", scale=0.5,
                     bias=variant != "no_bias", density=1.0 if variant == "dense" else 0.6)
    X, Y = random_data(net, n=40, loss="softmax_cross_entropy")
    if variant == "soft_labels":
        Y = np.random.default_rng(5).random(Y.shape) * 0.8
    kw = {"lam": 0.05, "regularize_bias": variant != "bias_not_regularized"}
    rows, etas = _rows(40, 4), list(np.linspace(0.3, 0.1, 11))
    tn = net.to(torch)
    ref_opt = get_optimizer(optimizer, net, **kw)
    ref_loss, _ = _reference_steps(net, X, Y, None, rows, etas, ref_opt)
    tr = CudaGraphTrainer(tn, X, Y, 4, optimizer, steps_per_graph=3, **kw)
    assert tr._y_sums_one == (variant != "soft_labels")
    loss, _ = tr.run(rows, etas)
    tr.sync()
    assert abs(loss - ref_loss) <= TOL["float64"] * abs(ref_loss)
    for a, b in zip(list(tn.W) + list(tn.b), list(net.W) + list(net.b)):
        assert (a is None) == (b is None)
        if b is not None:
            assert rel_err(a.numpy(), b) <= TOL["float64"]


@pytest.mark.parametrize("loss,output", LOSS_OUTPUTS)
@pytest.mark.parametrize("activation", DIFFERENTIABLE)
def test_trainer_layout_every_activation_and_loss(activation, loss, output):
    """The trainer's blocks [W_t | b_t | 0 ...] and inputs [o_t | 1 | 0 ...] (widths 8 here: 5+1 and
    6+1 rounded up) give the reference's steps for every activation and loss; the padding stays 0
    and sync() hands back contiguous arrays."""
    net = random_net(sizes=(5, 6, 4), activation=activation, loss=loss, output=output, scale=0.5)
    X, Y = random_data(net, n=40, loss=loss)
    rows, etas = _rows(40, 4), list(np.linspace(0.3, 0.1, 11))
    tn = net.to(torch)
    ref_loss, _ = _reference_steps(net, X, Y, None, rows, etas, get_optimizer("sgd", net))
    tr = CudaGraphTrainer(tn, X, Y, 4, "sgd", steps_per_graph=3)
    assert tr.layout.width == [8, 8]
    loss, _ = tr.run(rows, etas)
    tr.sync()
    assert abs(loss - ref_loss) <= TOL["float64"] * abs(ref_loss)
    for a, b in zip(list(tn.W) + list(tn.b), list(net.W) + list(net.b)):
        assert a.is_contiguous() and rel_err(a.numpy(), b) <= TOL["float64"]
    for block, k in zip(tr._Wb, net.k):
        assert bool((block[:, k + 1:] == 0).all())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_trainer_keeps_phantom_weights_zero(optimizer):
    net = random_net(sizes=(5, 6, 3), dtype="float32")
    X, Y = random_data(net, n=20)
    tn = net.to(torch)
    tr = CudaGraphTrainer(tn, X, Y, 4, optimizer, steps_per_graph=2)
    tr.run(_rows(20, 4), [0.5] * 11)
    tr.sync()
    for t in range(tn.T):
        assert bool((tn.W[t][~tn.masks[t]] == 0).all())
        assert bool((tn.b[t][~tn.bias_masks[t]] == 0).all())
        for Ws, bs in tr.opt.state.values():
            assert bool((Ws[t][~tn.masks[t]] == 0).all())
            assert bool((bs[t][~tn.bias_masks[t]] == 0).all())


def test_trainer_uses_and_returns_optimizer_state():
    """An optimizer passed in continues from its state; load() takes changed weights back in."""
    net, X, Y = _case(n=30)
    tn = net.to(torch)
    opt = get_optimizer("momentum", tn, momentum=0.5)
    rows = _rows(30, 4)
    ref = net.copy()
    ref_opt = get_optimizer("momentum", ref, momentum=0.5)
    _reference_steps(ref, X, Y, None, rows, [0.1] * 11, ref_opt)

    tr = CudaGraphEngine().trainer(tn, X, Y, 4, opt, steps_per_graph=4)
    tr.run(rows[:6], [0.1] * 6)
    tr.sync()
    assert opt.t == 6
    tr2 = CudaGraphTrainer(tn, X, Y, 4, opt, steps_per_graph=4)  # a new trainer resumes from the state
    tr2.run(rows[6:], [0.1] * 5)
    tr2.sync()
    for a, b in zip(tn.W, ref.W):
        assert rel_err(a.numpy(), b) <= 1e-12
    tn.replace_params([w * 0 for w in tn.W], [v * 0 for v in tn.b])
    tr2.load()
    assert all(bool((w == 0).all()) for w in tr2.W)


def test_trainer_rejects_bad_arguments():
    net, X, Y = _case()
    tn = net.to(torch)
    with pytest.raises(ValueError, match="capture=True needs"):
        CudaGraphTrainer(tn, X, Y, 2, capture=True)
    with pytest.raises(ValueError, match="batch_size"):
        CudaGraphTrainer(tn, X, Y, 0)
    with pytest.raises(ValueError, match="torch"):
        CudaGraphTrainer(net, X, Y, 2)
    with pytest.raises(ValueError, match="shapes"):
        CudaGraphTrainer(tn, X[:, :2], Y, 2)
    with pytest.raises(ValueError, match="same length"):
        CudaGraphTrainer(tn, X, Y, 2).run([[0, 1]], [0.1, 0.2])


def test_capture_bookkeeping_with_a_stand_in_graph(monkeypatch):
    """The capture path's host logic on the CPU: torch.cuda's stream and graph calls replaced by
    stand-ins whose replay runs the recorded block eagerly. Warm-up and the recording itself must
    leave the weights and optimizer state as they were, and replays must give the reference's steps.
    (Real stream capture needs a GPU: tests/test_cuda.py.)"""
    import contextlib

    class Stream:
        def __init__(self, *a, **k):
            pass

        def wait_stream(self, other):
            pass

    class Graph:
        def replay(self):
            tr._block()

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", lambda g: contextlib.nullcontext())

    net, X, Y = _case(n=30)
    rows = [np.random.default_rng(j).integers(0, 30, 4) for j in range(9)]
    ref = net.copy()
    ref_opt = get_optimizer("adam", ref, lam=0.01)
    ref_loss, _ = _reference_steps(ref, X, Y, None, rows, [0.05] * 9, ref_opt)

    tn = net.to(torch)
    tr = CudaGraphTrainer(tn, X, Y, 4, "adam", steps_per_graph=3, lam=0.01)
    tr.capture = True  # what a CUDA network gets by default
    loss, _ = tr.run(rows, [0.05] * 9)
    assert tr._graph is not None
    tr.sync()
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    for a, b in zip(list(tn.W) + list(tn.b), list(ref.W) + list(ref.b)):
        assert rel_err(a.numpy(), b) <= 1e-12


@pytest.mark.parametrize("as_tensor", [False, True])
def test_trainer_takes_a_2d_block_of_rows(as_tensor):
    """An (m, b) array (or device tensor) of rows gives what the list of m row arrays gives."""
    net, X, Y = _case(n=30)
    rows = np.random.default_rng(0).integers(0, 30, (6, 4))
    a, b = net.to(torch), net.to(torch)
    ta, tb = CudaGraphTrainer(a, X, Y, 4, steps_per_graph=3), CudaGraphTrainer(b, X, Y, 4, steps_per_graph=3)
    assert ta.run(list(rows), [0.1] * 6) == tb.run(torch.as_tensor(rows) if as_tensor else rows, [0.1] * 6)
    ta.sync()
    tb.sync()
    assert all(torch.equal(u, v) for u, v in zip(a.W, b.W))
