"""lp.sgd through the engine's whole-step trainer (engine "cuda_graph"), and ``device=``.

On every machine the trainer runs eagerly on torch CPU tensors (``engine="cuda_graph"`` on a torch CPU
network): its runs must equal the reference engine's step-by-step runs (float64, 1e-12 relative) for
each optimizer, with masks, l2, sample weights, validation, checkpoints and divergence. On a GPU
(skipped elsewhere) the same runs with ``device="cuda"`` go through CUDA-graph replays and must equal
the float64 CPU reference within float32 tolerance.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _nets import random_data, random_net, rel_err

import layerprop as lp
from layerprop.device import NO_CUDA
from layerprop.engines import cuda_graph

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam"]
F32 = 2e-4  # float32 after 50-200 steps against the float64 reference, relative to the largest entry
# (measured on torch CPU float32 through the trainer: at most 5e-5, Adam over 200 steps)


def _problem(n=37, loss="squared", output=None, sizes=(4, 6, 5, 3), seed=0):
    net = random_net(sizes=sizes, density=0.6, loss=loss, output=output, seed=seed, scale=0.7)
    X, Y = random_data(net, n=n, seed=seed, loss=loss)
    r = np.random.default_rng(seed + 11).uniform(0.0, 2.0, n)
    return net, X, Y, r


CASES = {  # keyword sets for lp.sgd: uniform and epochs sampling (an epoch's last batch is short)
    "plain": dict(iterations=50, batch_size=5, step_size=0.2),
    "l2+weights+epochs": dict(epochs=5, batch_size=8, step_size=0.2, l2=0.01, regularize_bias=False,
                              sample_weight="r", eval_every=7),
    "validation+best": dict(iterations=60, batch_size=4, step_size=0.3, l2=1e-3, validation="val",
                            eval_every=9, metric="loss"),
    "early_stopping": dict(iterations=200, batch_size=6, step_size=0.3, validation="val", eval_every=5,
                           early_stopping=True, patience=2, tol=1e-3, schedule="invscaling"),
}


def _kw(case, X, Y, r):
    kw = dict(CASES[case])
    if kw.get("sample_weight") == "r":
        kw["sample_weight"] = r
    if kw.get("validation") == "val":
        kw["validation"] = (X[:12], Y[:12])
    return kw


def _np(a):
    from layerprop._xp import to_numpy
    return to_numpy(a)


def _assert_close(got, ref, tol):
    for a, b in zip(list(got.W) + list(got.b), list(ref.W) + list(ref.b)):
        if b is None:
            assert a is None
            continue
        assert rel_err(_np(a), _np(b)) <= tol


def _assert_phantoms_zero(net):
    for w, m in zip(net.W, net.masks):
        assert np.all(_np(w)[~_np(m).astype(bool)] == 0.0)
    if net.bias_masks is not None:
        for v, m in zip(net.b, net.bias_masks):
            if v is not None:
                assert np.all(_np(v)[~_np(m).astype(bool)] == 0.0)


def _strip(history):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in history]


def _history_close(got, ref, tol):
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert a["iteration"] == b["iteration"] and a["epoch"] == b["epoch"]
        for key in ("train_loss", "val_loss", "val_metric", "grad_norm"):
            if b[key] is None:
                assert a[key] is None, key
            else:
                assert abs(a[key] - b[key]) <= tol * max(1.0, abs(b[key])), key


@pytest.fixture
def small_graphs(monkeypatch):
    """4 steps per CUDA graph in lp.sgd, so that these short runs' chunks hold whole graph blocks."""
    import importlib
    monkeypatch.setattr(importlib.import_module("layerprop.sgd"), "STEPS_PER_GRAPH", 4)


@pytest.fixture
def trainer_calls(monkeypatch):
    """Counts CudaGraphTrainer.run calls (to tell the trainer path from the step-by-step loop)."""
    calls = []
    real = cuda_graph.CudaGraphTrainer.run

    def run(self, rows, etas, **kw):
        calls.append((len(etas), self.capture))
        return real(self, rows, etas, **kw)

    monkeypatch.setattr(cuda_graph.CudaGraphTrainer, "run", run)
    return calls


# -- the trainer's eager path on torch CPU tensors (every machine) -----------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_trainer_run_equals_the_reference_run(optimizer, case, trainer_calls):
    net, X, Y, r = _problem()
    kw = _kw(case, X, Y, r)
    t = net.to(torch)
    ref = lp.sgd(t, X, Y, engine="reference", optimizer=optimizer, **kw)
    assert not trainer_calls
    got = lp.sgd(t, X, Y, engine="cuda_graph", optimizer=optimizer, **kw)
    assert trainer_calls and all(not capture for _, capture in trainer_calls)  # eager on the CPU
    assert got.recipe["engine"] == "cuda_graph"
    assert isinstance(got.network.W[0], torch.Tensor) and got.network.W[0].dtype == torch.float64
    _assert_close(got.network, ref.network, 1e-12)
    _assert_phantoms_zero(got.network)
    _history_close(got.history, ref.history, 1e-12)
    assert (got.iterations, got.stop_reason, got.best_iteration) == (ref.iterations, ref.stop_reason,
                                                                      ref.best_iteration)
    assert rel_err(got.best_score or 0.0, ref.best_score or 0.0) <= 1e-12


@pytest.mark.parametrize("loss,output", [("softmax_cross_entropy", "identity"), ("binary_cross_entropy", "sigmoid")])
def test_trainer_run_other_losses(loss, output):
    net, X, Y, r = _problem(loss=loss, output=output, sizes=(3, 5, 4))
    t = net.to(torch)
    kw = dict(epochs=3, batch_size=7, step_size=0.1, optimizer="adam", sample_weight=r)
    ref = lp.sgd(t, X, Y, engine="reference", **kw)
    got = lp.sgd(t, X, Y, engine="cuda_graph", **kw)
    _assert_close(got.network, ref.network, 1e-12)


def test_trainer_run_does_not_touch_the_input_network():
    net, X, Y, _ = _problem()
    t = net.to(torch)
    before = [w.clone() for w in t.W]
    lp.sgd(t, X, Y, iterations=20, batch_size=4, engine="cuda_graph")
    for a, b in zip(t.W, before):
        assert torch.equal(a, b)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("output", ["last", "best"])
def test_checkpoint_resume_is_bitwise_the_uninterrupted_run(tmp_path, optimizer, output, trainer_calls):
    net, X, Y, r = _problem()
    t = net.to(torch)
    kw = dict(batch_size=5, step_size=0.2, optimizer=optimizer, l2=1e-3, sample_weight=r, validation=(X, Y),
              output=output, eval_every=6, checkpoint_every=15, engine="cuda_graph", seed=3)
    whole = lp.sgd(t, X, Y, iterations=80, checkpoint=tmp_path / "a", **kw)
    first = lp.sgd(t, X, Y, iterations=30, checkpoint=tmp_path / "b", **kw)
    assert first.iterations == 30
    rest = lp.sgd(t, X, Y, iterations=80, checkpoint=tmp_path / "b", resume=True, **kw)
    assert trainer_calls
    for a, b in zip(list(rest.network.W) + list(rest.network.b), list(whole.network.W) + list(whole.network.b)):
        assert torch.equal(a, b)
    assert _strip(rest.history) == _strip(whole.history)
    assert rest.best_iteration == whole.best_iteration


def test_divergence_is_found_at_the_reference_iteration(trainer_calls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = X @ np.array([[1.0], [2.0], [-1.0]])
    net = lp.Network(lp.LayeredGraph.dense([3, 4, 1]), activation="tanh", output_activation="identity",
                     seed=0, dtype="float64").to(torch)
    kw = dict(iterations=400, step_size=3.0, batch_size=4, eval_every=50, validation=(X, Y))
    errs = {}
    for engine in ("reference", "cuda_graph"):
        with pytest.raises(lp.DivergenceError, match=r"iteration \d+.*smaller step_size") as info:
            lp.sgd(net, X, Y, engine=engine, **kw)
        errs[engine] = info.value
    assert trainer_calls
    got, ref = errs["cuda_graph"], errs["reference"]
    assert got.iteration == ref.iteration and str(got) == str(ref)
    assert got.result.stop_reason == "diverged" and got.result.iterations == ref.result.iterations
    _assert_close(got.result.network, ref.result.network, 1e-12)
    assert all(bool(torch.all(torch.isfinite(w))) for w in got.result.network.W)


@pytest.mark.parametrize("fallback", [dict(clip_norm=0.5), dict(output="average"), dict(optimizer="adam",
                                                                                         clip_norm=0.1)])
def test_what_the_trainer_does_not_run_falls_back_to_steps(fallback, trainer_calls):
    net, X, Y, r = _problem()
    t = net.to(torch)
    kw = dict(iterations=40, batch_size=5, step_size=0.3, l2=1e-3, sample_weight=r, **fallback)
    ref = lp.sgd(t, X, Y, engine="reference", **kw)
    got = lp.sgd(t, X, Y, engine="cuda_graph", **kw)
    assert not trainer_calls
    _assert_close(got.network, ref.network, 1e-12)
    _history_close(got.history, ref.history, 1e-12)


# -- device= ------------------------------------------------------------------------------------------
def test_device_none_keeps_the_network_where_it_is():
    net, X, Y, _ = _problem()
    res = lp.sgd(net.to(torch), X, Y, iterations=5)
    assert isinstance(res.network.W[0], torch.Tensor)
    res = lp.sgd(net, X, Y, iterations=5)
    assert isinstance(res.network.W[0], np.ndarray)


def test_device_cpu_trains_a_numpy_copy():
    net, X, Y, _ = _problem()
    t = net.to(torch)
    got = lp.sgd(t, torch.as_tensor(X), Y, iterations=25, batch_size=3, device="cpu")
    ref = lp.sgd(net, X, Y, iterations=25, batch_size=3)
    assert isinstance(got.network.W[0], np.ndarray) and isinstance(t.W[0], torch.Tensor)
    _assert_close(got.network, ref.network, 1e-12)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_device_cuda_without_a_gpu_is_one_clear_error():
    net, X, Y, _ = _problem()
    with pytest.raises(ValueError) as err:
        lp.sgd(net, X, Y, iterations=5, device="cuda")
    assert str(err.value) == NO_CUDA


def test_bad_device_names_it():
    net, X, Y, _ = _problem()
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'; got 'gpu'"):
        lp.sgd(net, X, Y, iterations=5, device="gpu")
    with pytest.raises(TypeError, match="net must be a layerprop Network"):
        lp.sgd("net", X, Y, iterations=5, device="cpu")


def test_a_torch_result_saves_and_loads(tmp_path):
    net, X, Y, _ = _problem()
    res = lp.sgd(net.to(torch), X, Y, iterations=10, engine="cuda_graph")
    path = lp.save(res.network, tmp_path / "m.safetensors")
    back = lp.load(path)
    for a, b in zip(back.W, res.network.W):
        np.testing.assert_array_equal(a, b.numpy())


# -- on a GPU: CUDA-graph replays ------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_cuda_run_equals_the_cpu_reference(optimizer, case, trainer_calls, small_graphs):
    net, X, Y, r = _problem()
    kw = _kw(case, X, Y, r)
    if case == "early_stopping":  # float32 may decide a stop an evaluation apart: compare a fixed run
        kw.pop("early_stopping")
    ref = lp.sgd(net, X, Y, engine="reference", optimizer=optimizer, **kw)
    got = lp.sgd(net.astype("float32"), X, Y, device="cuda", optimizer=optimizer, **kw)
    assert got.recipe["engine"] == "cuda_graph"
    assert any(capture for _, capture in trainer_calls)  # graph replays ran
    w = got.network.W[0]
    assert w.is_cuda and w.dtype == torch.float32
    _assert_close(got.network, ref.network, F32)
    _assert_phantoms_zero(got.network)
    assert len(got.history) == len(ref.history)
    for a, b in zip(got.history, ref.history):
        assert abs(a["train_loss"] - b["train_loss"]) <= F32 * max(1.0, abs(b["train_loss"]))


@needs_cuda
def test_cuda_float64_equals_the_cpu_trainer(small_graphs):
    net, X, Y, r = _problem()
    kw = dict(epochs=6, batch_size=4, step_size=0.2, optimizer="nesterov", sample_weight=r, l2=1e-3)
    ref = lp.sgd(net.to(torch), X, Y, engine="cuda_graph", **kw)
    got = lp.sgd(net, X, Y, device="cuda", **kw)
    assert got.network.W[0].dtype == torch.float64
    _assert_close(got.network, ref.network, 1e-12)


@needs_cuda
def test_cuda_checkpoint_resume_is_bitwise_and_saves(tmp_path):
    net, X, Y, r = _problem()
    kw = dict(batch_size=4, step_size=0.2, optimizer="adam", sample_weight=r, validation=(X, Y), eval_every=20,
              checkpoint_every=40, seed=3, device="cuda")
    f32 = net.astype("float32")
    whole = lp.sgd(f32, X, Y, iterations=200, checkpoint=tmp_path / "a", **kw)
    lp.sgd(f32, X, Y, iterations=80, checkpoint=tmp_path / "b", **kw)
    rest = lp.sgd(f32, X, Y, iterations=200, checkpoint=tmp_path / "b", resume=True, **kw)
    for a, b in zip(rest.network.W, whole.network.W):
        assert torch.equal(a, b)
    assert _strip(rest.history) == _strip(whole.history)
    back = lp.load(lp.save(rest.network, tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(back.W[0], rest.network.W[0].cpu().numpy())


@needs_cuda
def test_cuda_divergence_and_fallbacks(trainer_calls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    Y = X @ np.array([[1.0], [2.0], [-1.0]])
    net = lp.Network(lp.LayeredGraph.dense([3, 4, 1]), activation="tanh", output_activation="identity",
                     seed=0, dtype="float32")
    with pytest.raises(lp.DivergenceError) as info:
        lp.sgd(net, X, Y, iterations=2000, step_size=1e3, batch_size=4, eval_every=100, device="cuda")
    assert info.value.result.network.W[0].is_cuda
    assert all(bool(torch.all(torch.isfinite(w))) for w in info.value.result.network.W)
    trainer_calls.clear()
    got = lp.sgd(net, X, Y, iterations=50, batch_size=4, step_size=0.05, clip_norm=0.5, device="cuda")
    ref = lp.sgd(net.astype("float64"), X, Y, iterations=50, batch_size=4, step_size=0.05, clip_norm=0.5,
                 engine="reference")
    assert not trainer_calls
    _assert_close(got.network, ref.network, F32)


# -- estimators: the trainer's epochs (torch CPU tensors here, CUDA graphs on a GPU) --------------------
def _torch_cpu_estimator(monkeypatch):
    """Estimators whose network lives in torch CPU tensors (what device='cuda' does, minus the GPU)."""
    from layerprop.estimators import _BaseMLP
    monkeypatch.setattr(_BaseMLP, "_to_device", lambda self, net: net.to(torch))


@pytest.mark.parametrize("solver,momentum", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_estimator_epochs_on_the_trainer_equal_the_step_loop(kind, weighted, solver, momentum, monkeypatch,
                                                             trainer_calls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(61, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1) if kind == "classifier" else X @ [1.0, -2.0, 0.5, 0.0]
    sw = rng.uniform(0, 2, 61) if weighted else None
    est = lp.MLPClassifier if kind == "classifier" else lp.MLPRegressor
    kw = dict(hidden_layer_sizes=(5, 3), solver=solver, momentum=momentum, alpha=1e-2, l2=1e-3, batch_size=8,
              max_iter=6, learning_rate_init=0.05, random_state=0, dtype="float64", validation_data=(X, y),
              learning_rate="adaptive" if solver == "sgd" else "constant")
    ref = est(**kw).fit(X, y, sample_weight=sw)
    assert not trainer_calls
    _torch_cpu_estimator(monkeypatch)
    got = est(engine="cuda_graph", **kw).fit(X, y, sample_weight=sw)
    assert trainer_calls
    assert isinstance(got.network_.W[0], torch.Tensor)
    assert len(got.loss_curve_) == len(ref.loss_curve_)
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(got.validation_scores_, ref.validation_scores_, rtol=1e-12)
    for a, b in zip(got.coefs_ + got.intercepts_, ref.coefs_ + ref.intercepts_):
        assert rel_err(a, b) <= 1e-12
    pred = got.predict(X)
    assert isinstance(pred, np.ndarray)
    if kind == "classifier":
        np.testing.assert_array_equal(pred, ref.predict(X))
    else:
        np.testing.assert_allclose(pred, ref.predict(X), rtol=1e-10, atol=1e-12)
    # partial_fit continues with the optimizer state written back by the trainer
    np.testing.assert_allclose(got.partial_fit(X, y).coefs_[0], ref.partial_fit(X, y).coefs_[0], rtol=1e-11)


def test_estimator_tf32_is_a_parameter_checked_in_fit():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = X[:, 0] > 0
    clf = lp.MLPClassifier(tf32=True, max_iter=2)
    assert clf.get_params()["tf32"] is True
    with pytest.raises(ValueError, match="tf32=True needs device='cuda'"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="tf32"):
        lp.MLPRegressor(tf32="yes").fit(X, X[:, 0])


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_estimator_cuda_without_a_gpu_is_one_clear_error():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError) as err:
        lp.MLPRegressor(device="cuda").fit(X, X[:, 0])
    assert str(err.value) == NO_CUDA


@needs_cuda
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_estimator_on_cuda_equals_the_cpu_fit(solver, trainer_calls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    kw = dict(hidden_layer_sizes=(16,), solver=solver, batch_size=16, max_iter=5, random_state=0,
              learning_rate_init=0.01)
    ref = lp.MLPClassifier(dtype="float64", **kw).fit(X, y)
    got = lp.MLPClassifier(device="cuda", **kw).fit(X, y)
    assert any(capture for _, capture in trainer_calls)
    assert got.network_.W[0].is_cuda
    for a, b in zip(got.coefs_, ref.coefs_):
        assert rel_err(a, b) <= F32
    proba = got.predict_proba(X)
    assert isinstance(proba, np.ndarray)
    np.testing.assert_allclose(proba, ref.predict_proba(X), atol=1e-4)


# -- the command line -------------------------------------------------------------------------------------
def _cli(*args):
    from click.testing import CliRunner

    from layerprop.cli import cli
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("extra", [[], ["--tf32"]])
def test_cli_device_cuda_without_a_gpu_is_one_error_line(tmp_path, extra):
    res = _cli("train", "--device", "cuda", *extra, "--epochs", "1", "-q", "-o", tmp_path / "m.safetensors")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [f"Error: {NO_CUDA}"]
    assert not (tmp_path / "m.safetensors").exists()


def test_cli_tf32_needs_cuda(tmp_path):
    res = _cli("train", "--tf32", "--epochs", "1", "-q", "-o", tmp_path / "m.safetensors")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == ["Error: --tf32 needs --device cuda (TF32 is a GPU matrix-product mode)"]


@needs_cuda
def test_cli_device_cuda_trains_and_writes_a_model(tmp_path):
    import json
    out = tmp_path / "m.safetensors"
    res = _cli("train", "--device", "cuda", "--dtype", "float32", "--epochs", "2", "--json", "-o", out)
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["metrics"]["test"]["accuracy"] > 0.5
    assert isinstance(lp.load(out).W[0], np.ndarray)
