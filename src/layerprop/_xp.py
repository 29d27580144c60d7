"""Array-namespace helpers: the only core module that names numpy, torch or cupy.

The reference core is written once against the Python array API standard, so the same code runs
on NumPy, array-api-strict, torch and CuPy arrays. Conversion to NumPy happens only at the edges
(io, cli, repr), through :func:`to_numpy`.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, device as array_device, is_array_api_obj, is_numpy_array

__all__ = ["array_namespace", "array_device", "to_numpy", "is_numpy_array", "is_array_api_obj", "asarray_like"]


def to_numpy(x):
    """Return ``x`` as a NumPy array (a no-op for NumPy; copies from torch, CuPy or strict arrays)."""
    if x is None or isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "get"):  # cupy
        return x.get()
    try:
        return np.from_dlpack(x)
    except Exception:  # array-api-strict on older numpy: go through the buffer
        return np.asarray(x)


def asarray_like(x, like):
    """Return ``x`` (NumPy or nested lists) in the namespace, dtype and device of ``like``."""
    xp = array_namespace(like)
    return xp.asarray(x, dtype=like.dtype, device=array_device(like))
