"""device.py everywhere; the torch engine and CUDA-graph capture on a GPU (skipped without CUDA).

On a machine without CUDA only the device-resolution tests run: asking for device='cuda' there
must give one clear ValueError.
"""

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _nets import random_data, random_net, rel_err

from layerprop.device import NO_CUDA, NO_TORCH, resolve_device, to_device

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
F32 = 2e-5  # float32 results against the float64 reference, relative to the largest entry


# -- device resolution (every machine) -----------------------------------------------------------
@pytest.mark.parametrize("device", [None, "cpu"])
def test_cpu_resolves_to_numpy(device):
    assert resolve_device(device) == ("cpu", None)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CUDA", "tpu", 3])
def test_unknown_device_is_a_value_error_naming_it(device):
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(device)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_a_clear_error(device):
    with pytest.raises(ValueError) as err:
        resolve_device(device)
    assert str(err.value) == NO_CUDA == "device='cuda' needs PyTorch with CUDA; torch.cuda.is_available() is False"


def test_cuda_without_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ValueError) as err:
        resolve_device("cuda")
    assert str(err.value) == NO_TORCH
    assert str(err.value).startswith("device='cuda' needs PyTorch with CUDA")


def test_to_device_cpu():
    net = random_net()
    assert to_device(net, "cpu") is net
    back = to_device(net.to(torch), "cpu")
    assert isinstance(back.W[0], np.ndarray)
    np.testing.assert_array_equal(back.W[0], net.W[0])
    with pytest.raises(ValueError, match="tf32=True needs device='cuda'"):
        to_device(net, "cpu", tf32=True)
    with pytest.raises(TypeError, match="tf32"):
        to_device(net, "cpu", tf32="yes")


# -- on a GPU --------------------------------------------------------------------------------------
@needs_cuda
def test_to_device_cuda_and_tf32_is_opt_in():
    net = random_net(dtype="float32")
    before = torch.backends.cuda.matmul.allow_tf32
    gpu = to_device(net, "cuda")
    assert gpu.W[0].is_cuda and gpu.W[0].dtype == torch.float32 and gpu.masks[0].is_cuda
    assert torch.backends.cuda.matmul.allow_tf32 == before
    assert to_device(gpu, "cuda") is gpu
    try:
        to_device(net, "cuda", tf32=True)
        assert torch.backends.cuda.matmul.allow_tf32
        to_device(net, "cuda")  # back to strict float32
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@needs_cuda
@pytest.mark.parametrize("loss,output", [("squared", "sigmoid"), ("softmax_cross_entropy", "identity"),
                                         ("binary_cross_entropy", "sigmoid")])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "softplus"])
def test_engine_on_cuda_equals_the_reference(activation, loss, output):
    from layerprop.engines import select_engine
    from layerprop.engines.reference import ReferenceEngine

    net = random_net(activation=activation, loss=loss, output=output)
    X, Y = random_data(net, n=9, loss=loss)
    ref = ReferenceEngine().gradient_sums(net, X, Y, None)
    gpu = to_device(net.astype("float32"), "cuda")
    eng = select_engine(gpu)
    assert eng.name == "cuda_graph"
    got = eng.gradient_sums(gpu, torch.as_tensor(X, dtype=torch.float32, device="cuda"),
                            torch.as_tensor(Y, dtype=torch.float32, device="cuda"), None)
    assert abs(got[0] - ref[0]) <= F32 * abs(ref[0])
    for a, b in zip(got[2] + [v for v in got[3] if v is not None], ref[2] + [v for v in ref[3] if v is not None]):
        assert rel_err(a.cpu().numpy(), b) <= F32


@needs_cuda
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_captured_steps_equal_eager_cpu_steps(optimizer):
    """The graph replays give the numbers of the same steps run eagerly on torch CPU tensors."""
    from layerprop.engines.cuda_graph import CudaGraphTrainer

    net = random_net(sizes=(6, 8, 5, 3), dtype="float32", scale=0.5)
    X, Y = random_data(net, n=64)
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 64, 8) for _ in range(13)]  # 3 blocks of 4, and one step eagerly
    etas = list(np.linspace(0.2, 0.05, 13))
    cpu, gpu = net.to(torch), to_device(net, "cuda")
    eager = CudaGraphTrainer(cpu, X, Y, 8, optimizer, steps_per_graph=4, lam=0.01)
    graph = CudaGraphTrainer(gpu, X, Y, 8, optimizer, steps_per_graph=4, lam=0.01)
    assert graph.capture and not eager.capture
    l_cpu, _ = eager.run(rows, etas)
    l_gpu, w = graph.run(rows[:6], etas[:6])
    l_gpu2, w2 = graph.run(rows[6:], etas[6:])
    assert graph._graph is not None and w + w2 == 13 * 8
    assert abs(l_gpu + l_gpu2 - l_cpu) <= 1e-4 * abs(l_cpu)
    eager.sync()
    graph.sync()
    for a, b in zip(gpu.W, cpu.W):
        assert a.is_cuda
        assert rel_err(a.cpu().numpy(), b.numpy()) <= 1e-4
    for t in range(gpu.T):
        assert bool((gpu.W[t][~gpu.masks[t]] == 0).all())


@needs_cuda
def test_capture_with_sample_weights_and_load():
    from layerprop.engines.cuda_graph import CudaGraphTrainer

    net = random_net(sizes=(4, 6, 2), dtype="float32")
    X, Y = random_data(net, n=32)
    r = np.random.default_rng(2).random(32)
    gpu = to_device(net, "cuda")
    tr = CudaGraphTrainer(gpu, X, Y, 4, "sgd", steps_per_graph=2, sample_weight=r)
    rows = [np.arange(4 * j, 4 * j + 4) for j in range(8)]
    loss, wsum = tr.run(rows, [0.1] * 8)
    assert np.isfinite(loss) and abs(wsum - r.sum()) <= 1e-4 * r.sum()
    gpu.replace_params([w * 0 for w in gpu.W], [v * 0 for v in gpu.b])
    tr.load()  # the graph keeps its addresses: replays now start from zero weights
    tr.run(rows[:2], [0.0, 0.0])
    tr.sync()
    assert all(bool((w == 0).all()) for w in gpu.W)
