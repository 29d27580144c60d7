"""Where a network's arrays live: ``device="cpu"`` (NumPy) or ``device="cuda"`` (torch tensors on
an NVIDIA GPU). The estimators and the CLI (``--device``) resolve their argument here, once.

float32 on the GPU is strict IEEE float32 by default: TF32 matrix products (faster, about 10 bits
of mantissa) are used only when asked for with ``tf32=True``.
"""

from __future__ import annotations

NO_CUDA = "device='cuda' needs PyTorch with CUDA; torch.cuda.is_available() is False"
NO_TORCH = "device='cuda' needs PyTorch with CUDA; PyTorch is not installed (pip install torch)"


def resolve_device(device):
    """``device`` ("cpu", "cuda", "cuda:N", a ``torch.device`` or None) -> ("cpu", None) or
    ("cuda", torch.device); raises ValueError when CUDA is asked for and is not there."""
    if device is None:
        return "cpu", None
    name = str(device)
    if name == "cpu":
        return "cpu", None
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    try:
        import torch
    except ImportError:
        raise ValueError(NO_TORCH) from None
    if not torch.cuda.is_available():
        raise ValueError(NO_CUDA)
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: there are {torch.cuda.device_count()} CUDA devices "
                         f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    return "cuda", torch.device(name)


_tf32_on_by_us = False  # whether set_tf32(True) turned TF32 on (so that tf32=False turns it back off)


def set_tf32(enabled: bool) -> None:
    """Allow (True) or forbid (False) TF32 in float32 matrix products and cuDNN, process-wide
    (these are torch's own global switches)."""
    import torch

    global _tf32_on_by_us
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    _tf32_on_by_us = bool(enabled)


def to_device(net, device, tf32=False):
    """``net`` with its arrays on ``device``: a NumPy network for "cpu", torch tensors on the GPU
    for "cuda" (a copy; ``net`` itself is returned when it is already there).

    ``tf32=True`` turns on TF32 matrix products (process-wide, see :func:`set_tf32`). The default
    ``tf32=False`` is strict float32: it turns TF32 off again if an earlier ``tf32=True`` turned it
    on, and otherwise leaves torch's switches alone (torch's default is strict for matrix products).
    ``tf32=None`` leaves the switches as they are (``lp.sgd(..., device=...)`` moves networks so).
    """
    if tf32 is not None and not isinstance(tf32, bool):
        raise TypeError(f"tf32 must be True or False; got {tf32!r}")
    kind, dev = resolve_device(device)
    if kind == "cpu":
        if tf32:
            raise ValueError("tf32=True needs device='cuda' (TF32 is a GPU matrix-product mode)")
        if type(net.W[0]).__module__ == "numpy":
            return net
        import numpy as np

        return net.to(np)
    import torch

    if tf32 or (tf32 is not None and _tf32_on_by_us):
        set_tf32(tf32)
    w = net.W[0]
    if isinstance(w, torch.Tensor) and w.device == _index(dev):
        return net
    return net.to(torch, device=dev)


def _index(dev):
    """torch.device('cuda') -> torch.device('cuda:<current>') (what a tensor reports)."""
    import torch

    return dev if dev.index is not None else torch.device("cuda", torch.cuda.current_device())
