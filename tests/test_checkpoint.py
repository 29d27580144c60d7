"""Checkpoints and exact resume of lp.sgd, including a training process killed with SIGKILL
(between writes and in the middle of a checkpoint write)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from _procs import kill, wait_for

import layerprop as lp
from layerprop import io as lpio
from layerprop.sgd import CHECKPOINT_NAME

# The problem and the run, shared verbatim by this process and the child it kills.
PROBLEM = textwrap.dedent("""
    import numpy as np, layerprop as lp
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)); Y = rng.uniform(0.1, 0.9, size=(40, 2))
    net = lp.Network(lp.LayeredGraph.random([3, 6, 2], 0.6, seed=1), seed=0)
    KW = dict(iterations=1500, step_size=0.3, optimizer="momentum", l2=1e-3, validation=(X[:10], Y[:10]),
              eval_every=20, seed=5, engine="numpy")
""")
ns = {}
exec(PROBLEM, ns)


def _load(path):
    """lp.load when the package exports it, else the io module's (the same function)."""
    return getattr(lp, "load", lpio.load)(path)


def _same(a, b):
    for x, y in zip(list(a.W) + list(a.b), list(b.W) + list(b.b)):
        np.testing.assert_array_equal(x, y)


def _strip(history):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in history]


def _temp_files(folder):
    return [p for p in Path(folder).iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


# -- in process -----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["reference", "auto"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("output", ["last", "best", "average"])
def test_resume_gives_bitwise_the_same_weights(tmp_path, engine, optimizer, output):
    net, X, Y = ns["net"], ns["X"], ns["Y"]
    kw = dict(step_size=0.3, optimizer=optimizer, validation=(X, Y), output=output, eval_every=25,
              engine=engine, seed=4, l2=1e-3, checkpoint_every=50)
    whole = lp.sgd(net, X, Y, iterations=200, checkpoint=tmp_path / "a", **kw)
    first = lp.sgd(net, X, Y, iterations=100, checkpoint=tmp_path / "b", **kw)
    assert first.iterations == 100
    resumed = lp.sgd(net, X, Y, iterations=200, checkpoint=tmp_path / "b", resume=True, **kw)
    _same(whole.network, resumed.network)
    assert (whole.best_iteration, whole.best_score) == (resumed.best_iteration, resumed.best_score)
    assert _strip(whole.history) == _strip(resumed.history)
    assert resumed.iterations == 200


def test_resume_of_the_blocked_batch_one_loop_is_bitwise(tmp_path):
    """Batch 1 with a dense W_0 runs in the compiled loop's blocks (numba installed): blocks start
    at every chunk (evaluation or checkpoint), so a resumed run is the uninterrupted one bitwise."""
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(60, 5)), rng.uniform(0.1, 0.9, size=(60, 2))
    net = lp.Network(lp.LayeredGraph.dense([5, 40, 2]), seed=0)
    kw = dict(step_size=0.2, l2=1e-3, validation=(X[:10], Y[:10]), eval_every=45, seed=2,
              checkpoint_every=90, batch_size=1)
    whole = lp.sgd(net, X, Y, iterations=400, checkpoint=tmp_path / "a", **kw)
    first = lp.sgd(net, X, Y, iterations=180, checkpoint=tmp_path / "b", **kw)
    assert first.iterations == 180
    resumed = lp.sgd(net, X, Y, iterations=400, checkpoint=tmp_path / "b", resume=True, **kw)
    _same(whole.network, resumed.network)
    assert _strip(whole.history) == _strip(resumed.history)


def test_checkpoints_do_not_change_the_run(tmp_path):
    net, X, Y, KW = ns["net"], ns["X"], ns["Y"], ns["KW"]
    kw = {**KW, "iterations": 300}
    plain = lp.sgd(net, X, Y, **kw)
    ck = lp.sgd(net, X, Y, checkpoint=tmp_path, checkpoint_every=70, **kw)
    _same(plain.network, ck.network)
    assert _strip(plain.history) == _strip(ck.history)


def test_checkpoint_is_a_model_file_with_the_run_state(tmp_path):
    net, X, Y, KW = ns["net"], ns["X"], ns["Y"], ns["KW"]
    res = lp.sgd(net, X, Y, **{**KW, "iterations": 120}, checkpoint=tmp_path, checkpoint_every=60)
    path = tmp_path / CHECKPOINT_NAME
    model = _load(path)
    _same(model, lp.sgd(net, X, Y, **{**KW, "iterations": 120, "output": "last"}).network)
    _, state, info = lpio.load_checkpoint(path)
    assert info["iteration"] == 120 and info["recipe"] == res.recipe
    assert any(k.startswith("opt.velocity") for k in state) and any(k.startswith("best.") for k in state)
    assert _temp_files(tmp_path) == []


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    net, X, Y, KW = ns["net"], ns["X"], ns["Y"], ns["KW"]
    kw = {**KW, "iterations": 80}
    a = lp.sgd(net, X, Y, checkpoint=tmp_path / "new", resume=True, **kw)
    _same(a.network, lp.sgd(net, X, Y, **kw).network)


def test_resuming_a_finished_run_returns_it(tmp_path):
    net, X, Y, KW = ns["net"], ns["X"], ns["Y"], ns["KW"]
    kw = {**KW, "iterations": 80, "checkpoint": tmp_path}
    a = lp.sgd(net, X, Y, **kw)
    b = lp.sgd(net, X, Y, resume=True, **kw)
    _same(a.network, b.network)
    assert _strip(a.history) == _strip(b.history) and b.iterations == 80


@pytest.mark.parametrize("change, name", [
    ({"step_size": 0.2}, "step_size"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"seed": 6}, "seed"),
    ({"l2": 0.0}, "l2"),
    ({"batch_size": 2}, "batch_size"),
    ({"eval_every": 10}, "eval_every"),
])
def test_resume_refuses_a_different_recipe(tmp_path, change, name):
    net, X, Y, KW = ns["net"], ns["X"], ns["Y"], ns["KW"]
    lp.sgd(net, X, Y, **{**KW, "iterations": 40}, checkpoint=tmp_path)
    with pytest.raises(ValueError, match=name):
        lp.sgd(net, X, Y, **{**KW, **change}, checkpoint=tmp_path, resume=True)


def test_resume_refuses_other_data_or_network(tmp_path):
    net, X, Y, KW = ns["net"], ns["X"], ns["Y"], ns["KW"]
    lp.sgd(net, X, Y, **{**KW, "iterations": 40}, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="data"):
        lp.sgd(net, X + 1, Y, **KW, checkpoint=tmp_path, resume=True)
    other = lp.Network(lp.LayeredGraph.dense([3, 6, 2]), seed=0)
    with pytest.raises(ValueError, match="network"):
        lp.sgd(other, X, Y, **KW, checkpoint=tmp_path, resume=True)


def test_divergence_never_writes_non_finite_weights(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)) * 10
    Y = X @ np.array([[1.0], [2.0], [-1.0]])
    net = lp.Network(lp.LayeredGraph.dense([3, 4, 1]), activation="tanh", output_activation="identity", seed=0)
    with pytest.raises(lp.DivergenceError):
        lp.sgd(net, X, Y, iterations=3000, step_size=1e-3, schedule=lambda i: 1e-3 * 1.5 ** i,
               checkpoint=tmp_path, checkpoint_every=1, engine="reference")
    model = _load(tmp_path / CHECKPOINT_NAME)  # the last good checkpoint, finite (io checks it)
    assert all(np.all(np.isfinite(w)) for w in model.W)


# -- a real process, killed ---------------------------------------------------------------------

CHILD = PROBLEM + textwrap.dedent("""
    import os, sys, time
    import layerprop.io as lio
    folder, mode = sys.argv[1], sys.argv[2]
    if mode == "midwrite":  # the second checkpoint write stalls half-way (the parent kills us there)
        original, calls = lio.atomic_write, []
        def slow(path, data):
            calls.append(path)
            if len(calls) < 2:
                return original(path, data)
            def writer(f):
                f.write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())
                open(os.path.join(folder, "WRITING"), "w").close()
                time.sleep(600)
                f.write(data[len(data) // 2:])
            return original(path, writer)
        lio.atomic_write = slow
    lp.sgd(net, X, Y, checkpoint=folder, checkpoint_every=50, callback=lambda row: time.sleep(0.01), **KW)
    open(os.path.join(folder, "DONE"), "w").close()
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
@pytest.mark.parametrize("mode", ["between_writes", "midwrite"])
def test_killed_run_resumes_to_bitwise_the_same_weights(tmp_path, mode):
    folder = tmp_path / "run"
    folder.mkdir()
    ckpt = folder / CHECKPOINT_NAME
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if mode == "midwrite":
            ready = wait_for(lambda: (folder / "WRITING").exists(), proc)
        else:
            ready = wait_for(ckpt.exists, proc)
            time.sleep(0.3)  # let it run on past the first checkpoint
        out = b"" if proc.poll() is None else proc.communicate()[1]
        assert ready and proc.poll() is None, f"the child ended early: {out.decode()[-2000:]}"
    finally:
        kill(proc)
    assert not (folder / "DONE").exists()

    # the last complete checkpoint loads as a model and as a checkpoint, mid-run
    model = _load(ckpt)
    _, _, info = lpio.load_checkpoint(ckpt)
    # checkpoints every 50 iterations, evaluations every 20: the state between evaluations is saved too
    assert 50 <= info["iteration"] < ns["KW"]["iterations"] and info["iteration"] % 50 == 0
    if mode == "midwrite":
        assert info["iteration"] == 50  # the stalled second write did not replace it
        assert len(_temp_files(folder)) == 1  # the half-written temporary file is still there
    assert all(np.all(np.isfinite(w)) for w in model.W)

    net, X, Y, KW = ns["net"], ns["X"], ns["Y"], ns["KW"]
    resumed = lp.sgd(net, X, Y, checkpoint=folder, checkpoint_every=50, resume=True, **KW)
    assert _temp_files(folder) == []  # the next run removed the leftover
    whole = lp.sgd(net, X, Y, **KW)
    _same(whole.network, resumed.network)
    assert _strip(whole.history) == _strip(resumed.history)
    assert (whole.best_iteration, whole.best_score) == (resumed.best_iteration, resumed.best_score)
