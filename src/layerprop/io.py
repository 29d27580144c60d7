"""Safe model files: one safetensors file per network, never pickle; atomic writes; checkpoints.

A model file holds the tensors ``W.{t}``, ``mask.{t}`` and, with bias, ``b.{t}``,
``bias_mask.{t}`` (t = 0..T-1), and in its safetensors ``__metadata__`` one key ``"layerprop"``
whose value is a JSON object: the format and version, the sizes k_0..k_T, the bias flag, the
activation names of layers 1..T, the loss, the dtype and ``info`` (the network's metadata).
A checkpoint is the same file plus tensors ``state.<key>`` and ``info["checkpoint"]``.
The format and the checks :func:`load` makes are listed in ``docs/model-files.md``.

Reading trusts nothing: the header is parsed and checked here (lengths, offsets, dtypes, shapes,
names, caps) before safetensors decodes a byte, and the values are checked before a
:class:`~layerprop.Network` is built. Every problem raises :class:`ModelFileError`.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import safetensors.numpy

from ._xp import to_numpy
from .activations import ACTIVATIONS
from .graph import LayeredGraph
from .losses import LOSSES
from .network import Network

__all__ = [
    "ModelFileError", "FORMAT", "FORMAT_VERSION", "save", "load", "read_info",
    "save_checkpoint", "load_checkpoint", "atomic_write", "remove_stale_temp_files",
]

FORMAT = "layerprop"
FORMAT_VERSION = 1
METADATA_KEY = "layerprop"

# Caps: a file beyond them is refused before anything large is allocated.
MAX_FILE_BYTES = 16 * 2**30
MAX_HEADER_BYTES = 100_000_000
MAX_JSON_CONTAINERS = 2_000_000  # '{' and '[' in a header: bounds the parse to about a second
MAX_TENSORS = 10_000
MAX_NDIM = 8
MAX_WIDTH = 1_000_000  # neurons in one layer
MAX_WEIGHTS = 500_000_000  # entries of all W[t] and b[t]

# safetensors dtype -> NumPy dtype, for the dtypes a layerprop file may contain.
_DTYPES = {
    "BOOL": np.dtype(bool), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16), "I16": np.dtype(np.int16), "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32), "U64": np.dtype(np.uint64), "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16), "F32": np.dtype(np.float32), "F64": np.dtype(np.float64),
}
_WEIGHT_DTYPES = {"float32": "F32", "float64": "F64"}
_MASK_DTYPES = ("U8", "BOOL")
_SETTINGS = ("format", "version", "sizes", "bias", "activations", "loss", "dtype", "info")
_STATE_PREFIX = "state."
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
_FOREIGN_MAGIC = (
    (b"PK\x03\x04", "a zip file (torch.save, .npz, .keras)"),
    (b"PK\x05\x06", "a zip file"),
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"\x89HDF", "an HDF5 file"),
)


class ModelFileError(ValueError):
    """A model or checkpoint file is missing, corrupt, unsafe or not a layerprop file.

    The message names the file and the problem. It is the one error :func:`load`,
    :func:`load_checkpoint` and :func:`read_info` raise for a bad file.
    """


def _error(path, problem: str) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}")


# -- atomic writes ------------------------------------------------------------------------------


def atomic_write(path, data: bytes | str | Callable) -> Path:
    """Write a file atomically: readers see the old file or the new one, never a partial one.

    The data go to a temporary file ``.{name}.{pid}.{random}.tmp`` in the same folder, which is
    flushed, fsync'ed and renamed over ``path`` (``os.replace``); then the folder is fsync'ed.
    On any error the temporary file is removed and the error re-raised; a previous file at
    ``path`` stays intact. Temporary files of ``path`` that a killed write left behind
    (see :func:`remove_stale_temp_files`) are removed first.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its folder must exist.
    data : bytes, str or callable
        The content (a str is written as UTF-8), or a function called with the open binary
        file object, which writes the content into it (``lambda f: np.save(f, x)``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "notes.txt", "hello").read_text()
    'hello'
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not callable(data) and not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, str or a function of a file object; got {type(data).__name__}")
    try:  # the temporary file an earlier, killed write of this file left behind
        remove_stale_temp_files(path.parent, name=path.name)
    except OSError:
        pass  # a folder that cannot be listed: the write itself reports what is wrong
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a file system that cannot fsync a folder is let be."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def remove_stale_temp_files(folder, name=None, *, max_age_s: float = 900.0) -> list:
    """Remove temporary files that a killed :func:`atomic_write` left behind.

    A temporary file ``.{name}.{pid}.{random}.tmp`` is stale when the process ``pid`` is no
    longer alive on this machine, or when it is older than ``max_age_s`` seconds (a write in
    progress by a live process is left alone until then). On Windows only the age counts.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to clean.
    name : str, optional
        Only the temporary files of this target file name (e.g. ``"model.safetensors"``).
    max_age_s : float
        Age in seconds after which a temporary file is stale whatever its pid.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed = []
    now = time.time()
    for p in sorted(Path(folder).iterdir()):
        m = _TEMP_NAME.match(p.name)
        if m is None or (name is not None and m["name"] != name) or not p.is_file():
            continue
        try:
            old = now - p.stat().st_mtime > max_age_s
            if old or not _pid_alive(int(m["pid"])):
                p.unlink()
                removed.append(p)
        except FileNotFoundError:  # finished or removed meanwhile
            continue
    return removed


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would send CTRL_C_EVENT on Windows
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True


# -- saving -------------------------------------------------------------------------------------


def save(obj, path, *, info=None) -> Path:
    """Save a network to one safetensors file (atomically).

    Parameters
    ----------
    obj : Network, training result or fitted estimator
        A :class:`~layerprop.Network`; or an object with a ``.network`` attribute (a training
        result, whose ``.recipe``, ``.best_iteration`` and ``.best_score`` go into
        ``info["recipe"]`` and ``info["metrics"]``); or one with ``.network_`` (an estimator).
    path : str or os.PathLike
        The file to write, usually ``*.safetensors``.
    info : dict, optional
        JSON-serializable metadata, merged over ``network.info``. The key ``"checkpoint"``
        is reserved for :func:`save_checkpoint`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        A weight is NaN or inf, an activation is a custom pair (it has no name to save),
        or ``info`` is not JSON-serializable. Nothing is written then.

    Examples
    --------
    >>> import tempfile, pathlib, layerprop as lp
    >>> net = lp.Network(lp.LayeredGraph.dense([2, 3, 1]), seed=0)
    >>> path = save(net, pathlib.Path(tempfile.mkdtemp()) / "net.safetensors")
    >>> bool((load(path).W[0] == net.W[0]).all())
    True
    """
    net, merged = _network_and_info(obj, info)
    if "checkpoint" in merged:
        raise ValueError('info key "checkpoint" is reserved for checkpoints (use save_checkpoint)')
    return atomic_write(path, _serialize(net, merged, {}))


def save_checkpoint(path, network, state: dict, info: dict) -> Path:
    """Save a training checkpoint: the network, extra state arrays and the checkpoint's info.

    The file is a model file (:func:`load` reads it as one) with tensors ``state.<key>``
    and ``info["checkpoint"] = info``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (atomically).
    network : Network
        The network (or an object :func:`save` accepts).
    state : dict of str to numpy.ndarray
        Optimizer moments, random-generator state (as uint64/uint8 arrays), counters...
        Dtypes: bool, (u)int8..64, float16/32/64.
    info : dict
        JSON-serializable facts of the checkpoint (iteration, seed, recipe...).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    net, merged = _network_and_info(network, None)
    if not isinstance(info, dict):
        raise TypeError(f"info must be a dict; got {type(info).__name__}")
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict of arrays; got {type(state).__name__}")
    merged["checkpoint"] = info
    return atomic_write(path, _serialize(net, merged, _state_tensors(state)))


def _network_and_info(obj, info) -> tuple:
    """The network to save and its info: network.info, then the training result's, then ``info``."""
    if isinstance(obj, Network):
        net, extra = obj, {}
    elif hasattr(obj, "network"):
        net, extra = obj.network, _result_info(obj)
    elif hasattr(obj, "network_"):
        net, extra = obj.network_, {}
    else:
        raise TypeError(f"cannot save a {type(obj).__name__}: pass a Network, a training result or a fitted estimator")
    if not isinstance(net, Network):
        raise TypeError(f"expected a Network; got {type(net).__name__}")
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"info must be a dict; got {type(info).__name__}")
    if "metrics" in extra and isinstance(net.info.get("metrics"), dict):
        extra["metrics"] = {**net.info["metrics"], **extra["metrics"]}
    return net, {**net.info, **extra, **(info or {})}


def _result_info(result) -> dict:
    """info["recipe"] and info["metrics"] from a training result."""
    out = {}
    if getattr(result, "recipe", None) is not None:
        out["recipe"] = dict(result.recipe)
    metrics = {k: getattr(result, k) for k in ("best_iteration", "best_score") if getattr(result, k, None) is not None}
    if metrics:
        out["metrics"] = metrics
    return out


def _serialize(net: Network, info: dict, state: dict) -> bytes:
    """The safetensors bytes of a network (validated: named activations, finite weights)."""
    if "custom" in net.activation_names:
        raise ValueError("a network with a custom (sigma, sigma_prime) activation cannot be saved: "
                         f"only named activations {sorted(ACTIVATIONS)} can be loaded back")
    dtype = to_numpy(net.W[0]).dtype.name
    settings = {"format": FORMAT, "version": FORMAT_VERSION, "sizes": list(net.k),
                "bias": net.bias_masks is not None, "activations": list(net.activation_names),
                "loss": net.loss_name, "dtype": dtype, "info": info}
    tensors = {}
    for t in range(net.T):
        tensors[f"W.{t}"] = _finite(to_numpy(net.W[t]), f"W[{t}]")
        tensors[f"mask.{t}"] = np.asarray(to_numpy(net.masks[t]), dtype=np.uint8, order="C")
        if net.bias_masks is not None:
            tensors[f"b.{t}"] = _finite(to_numpy(net.b[t]), f"b[{t}]")
            tensors[f"bias_mask.{t}"] = np.asarray(to_numpy(net.bias_masks[t]), dtype=np.uint8, order="C")
    tensors.update(state)
    return safetensors.numpy.save(tensors, metadata={METADATA_KEY: _to_json(settings)})


def _finite(w: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(w).all():
        raise ValueError(f"{name} contains NaN or inf: refusing to save a diverged network")
    return np.asarray(w, order="C")


def _state_tensors(state: dict) -> dict:
    """``state.<key>`` tensors, checked: string keys, supported dtypes."""
    allowed = set(_DTYPES.values())
    out = {}
    for key, value in state.items():
        if not isinstance(key, str) or not key or len(key) > 200:
            raise ValueError(f"state keys must be non-empty strings of at most 200 characters; got {key!r}")
        arr = np.asarray(to_numpy(value))
        if arr.dtype.newbyteorder("=") not in allowed:
            raise ValueError(f"state[{key!r}] has dtype {arr.dtype}; supported: bool, (u)int8..64, float16/32/64")
        out[_STATE_PREFIX + key] = np.asarray(arr, order="C")  # keeps 0-d arrays 0-d
    return out


def _to_json(settings: dict) -> str:
    try:
        return json.dumps(settings, allow_nan=False, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"info must be JSON-serializable with finite numbers: {e}") from None


def _json_default(x):
    """NumPy scalars and arrays in info become plain numbers and lists."""
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} {x!r} is not JSON-serializable")


# -- loading ------------------------------------------------------------------------------------


class _Entry(NamedTuple):
    dtype: str
    shape: tuple
    start: int
    end: int


class _Parsed(NamedTuple):
    settings: dict
    data: bytes | None  # the whole file, when the body was read


def load(path) -> Network:
    """Load a network saved by :func:`save` (or a checkpoint's network), checking everything.

    Parameters
    ----------
    path : str or os.PathLike
        A layerprop safetensors file.

    Returns
    -------
    Network
        With ``info`` restored (a checkpoint's ``info["checkpoint"]`` is left out).

    Raises
    ------
    ModelFileError
        The file is missing, unreadable, too large, not safetensors (pickle, zip...), not a
        layerprop model, of an unknown version, or inconsistent in any way (see
        ``docs/model-files.md``). No network is built then.
    """
    return _load(path)[0]


def load_checkpoint(path) -> tuple:
    """Load a checkpoint saved by :func:`save_checkpoint`, checked as :func:`load` checks models.

    Parameters
    ----------
    path : str or os.PathLike
        A layerprop checkpoint file.

    Returns
    -------
    network : Network
    state : dict of str to numpy.ndarray
        The state arrays (writable copies).
    info : dict
        The checkpoint's info, as given to :func:`save_checkpoint`.

    Raises
    ------
    ModelFileError
        As :func:`load`, and when the file is a model file but not a checkpoint.
    """
    net, state, parsed = _load(path)
    if "checkpoint" not in parsed.settings["info"]:
        raise _error(path, "this is a model file, not a checkpoint (it has no checkpoint info)")
    return net, state, parsed.settings["info"]["checkpoint"]


def read_info(path) -> dict:
    """The settings and info of a model file, checked, without reading the weights.

    Parameters
    ----------
    path : str or os.PathLike
        A layerprop model or checkpoint file.

    Returns
    -------
    dict
        ``format``, ``version``, ``sizes``, ``bias``, ``activations``, ``loss``, ``dtype``
        and ``info``. The header (names, dtypes, shapes, offsets) is checked; the values
        are not (use :func:`load` for that).

    Raises
    ------
    ModelFileError
        As :func:`load`, for every problem visible in the header.
    """
    return _parse(path, read_body=False).settings


def _load(path) -> tuple:
    parsed = _parse(path, read_body=True)
    try:
        arrays = safetensors.numpy.load(parsed.data)
    except Exception as e:  # safetensors re-checks the header; our checks should make this unreachable
        raise _error(path, f"safetensors could not decode the tensors: {e}") from None
    _check_values(path, parsed.settings, arrays)
    net = _build_network(path, parsed.settings, arrays)
    state = {k[len(_STATE_PREFIX):]: np.array(v) for k, v in arrays.items() if k.startswith(_STATE_PREFIX)}
    return net, state, parsed


def _parse(path, read_body: bool) -> _Parsed:
    """Read the file and check its header, metadata and tensor layout (not the values)."""
    size, raw, data = _read(path, read_body)
    header = _parse_json(path, _utf8(path, raw, "the safetensors header"), "the safetensors header")
    settings = _check_settings(path, header.pop("__metadata__", None))
    entries = _check_entries(path, header)
    _check_layout(path, entries, size - 8 - len(raw))
    _check_tensor_names(path, settings, entries)
    return _Parsed(settings, data)


def _read(path, read_body: bool) -> tuple:
    """(file size, header bytes, whole file or None); only sizes the file allows are read."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise _error(path, f"the file has {size} bytes, more than the cap of {MAX_FILE_BYTES}")
            head = f.read(8)
            n = _header_length(path, head, size)
            header = f.read(n)
            if len(header) != n:
                raise _error(path, "the file changed while it was read")
            if not header.startswith(b"{"):
                raise _not_safetensors(path, head, "the header does not start with '{'")
            if not read_body:
                return size, header, None
            f.seek(0)
            data = f.read(size + 1)
    except FileNotFoundError:
        raise _error(path, "no such file") from None
    except IsADirectoryError:
        raise _error(path, "is a folder, not a model file") from None
    except OSError as e:
        raise _error(path, f"cannot be read: {e.strerror or e}") from None
    if len(data) != size:
        raise _error(path, "the file changed while it was read")
    return size, header, data


def _header_length(path, head: bytes, size: int) -> int:
    """The header length N from the first 8 bytes (little-endian u64), checked against the file."""
    if size == 0:
        raise _error(path, "the file is empty")
    n = int.from_bytes(head, "little") if len(head) == 8 else None
    if n is None:
        raise _not_safetensors(path, head, f"the file has {size} bytes, too short for a safetensors header")
    if n > size - 8 or n > MAX_HEADER_BYTES or n < 2:
        raise _not_safetensors(path, head, f"the header length {n} does not fit the file ({size} bytes, "
                                           f"header cap {MAX_HEADER_BYTES}): truncated or not a safetensors file")
    return n


def _not_safetensors(path, head: bytes, problem: str) -> ModelFileError:
    """The error for a file that is not safetensors, naming what it looks like (pickle, zip...)."""
    foreign = _foreign_format(head)
    if foreign:
        return _error(path, f"looks like {foreign}, not a layerprop model (safetensors); "
                            "layerprop never loads pickle or zip files, which can run code")
    return _error(path, problem)


def _foreign_format(head: bytes):
    """What a file that is not safetensors looks like, from its first bytes (or None)."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a pickle file (torch.save, joblib, pickle)"
    return next((what for magic, what in _FOREIGN_MAGIC if head.startswith(magic)), None)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs):
    keys = set()
    for k, _ in pairs:
        if k in keys:
            raise _DuplicateKey(k)
        keys.add(k)
    return dict(pairs)


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _utf8(path, raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(path, f"{what} is not UTF-8 text") from None


def _parse_json(path, text: str, what: str) -> dict:
    """A strict JSON object: no duplicate keys, no NaN/Infinity."""
    if not text.lstrip().startswith("{"):
        raise _error(path, f"{what} is not a JSON object")
    if text.count("{") + text.count("[") > MAX_JSON_CONTAINERS:
        raise _error(path, f"{what} has more than {MAX_JSON_CONTAINERS} JSON objects and arrays")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as e:
        raise _error(path, f"{what} has the key {str(e)!r} twice") from None
    except (ValueError, RecursionError) as e:
        raise _error(path, f"{what} is not valid JSON ({str(e)[:200]})") from None


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_entries(path, header: dict) -> dict:
    """Each tensor entry: {"dtype": allowed, "shape": [ints >= 0], "data_offsets": [begin, end]}."""
    if len(header) > MAX_TENSORS:
        raise _error(path, f"the header lists {len(header)} tensors, more than the cap of {MAX_TENSORS}")
    return {name: _check_entry(path, name, e) for name, e in header.items()}


def _check_entry(path, name: str, e) -> _Entry:
    where = f"tensor {name[:100]!r}"
    if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
        raise _error(path, f"{where}: an entry needs exactly the keys dtype, shape and data_offsets")
    dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise _error(path, f"{where}: dtype {str(dtype)[:20]!r} is not one of {sorted(_DTYPES)}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_int(d) and d >= 0 for d in shape):
        raise _error(path, f"{where}: the shape must be a list of at most {MAX_NDIM} integers >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise _error(path, f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end")
    nbytes = math.prod(shape) * _DTYPES[dtype].itemsize  # Python ints: no overflow
    if nbytes != offsets[1] - offsets[0]:
        raise _error(path, f"{where}: shape {shape} of {dtype} needs {nbytes} bytes, but its data_offsets "
                           f"span {offsets[1] - offsets[0]}")
    return _Entry(dtype, tuple(shape), offsets[0], offsets[1])


def _check_layout(path, entries: dict, body_size: int) -> None:
    """The tensors' bytes tile the body exactly: in range, no overlap, no gap, nothing after."""
    end = 0
    for e in sorted(entries.values(), key=lambda e: (e.start, e.end)):
        if e.start != end:
            problem = "overlap" if e.start < end else "leave a gap"
            raise _error(path, f"tensor data_offsets {problem} (at byte {min(e.start, end)} of the data)")
        end = e.end
    if end != body_size:
        raise _error(path, f"the tensors need {end} bytes of data but the file has {body_size}: "
                           "truncated, padded or corrupt")


def _check_settings(path, metadata) -> dict:
    """The layerprop settings in the metadata: format, version, sizes, names from the registries."""
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _error(path, "the safetensors __metadata__ is missing or not a map of strings: not a layerprop model")
    if METADATA_KEY not in metadata:
        raise _error(path, f"no {METADATA_KEY!r} metadata: a safetensors file, but not a layerprop model")
    s = _parse_json(path, metadata[METADATA_KEY], "the layerprop metadata")
    if s.get("format") != FORMAT:
        raise _error(path, f"format is {str(s.get('format'))[:50]!r}, not {FORMAT!r}")
    if not _is_int(s.get("version")) or s["version"] != FORMAT_VERSION:
        raise _error(path, f"format version {str(s.get('version'))[:20]} is not supported (this layerprop "
                           f"reads version {FORMAT_VERSION}; a newer layerprop may read it)")
    if set(s) != set(_SETTINGS):
        raise _error(path, f"the layerprop metadata must have exactly the keys {list(_SETTINGS)}")
    _check_sizes(path, s["sizes"])
    T = len(s["sizes"]) - 1
    if not isinstance(s["bias"], bool):
        raise _error(path, "bias must be true or false")
    acts = s["activations"]
    if not isinstance(acts, list) or len(acts) != T or not all(isinstance(a, str) and a in ACTIVATIONS for a in acts):
        raise _error(path, f"activations must list {T} names from {sorted(ACTIVATIONS)}; got {str(acts)[:200]}")
    if not isinstance(s["loss"], str) or s["loss"] not in LOSSES:
        raise _error(path, f"loss {str(s['loss'])[:50]!r} is not one of {sorted(LOSSES)}")
    if not isinstance(s["dtype"], str) or s["dtype"] not in _WEIGHT_DTYPES:
        raise _error(path, f"dtype {str(s['dtype'])[:20]!r} is not one of {sorted(_WEIGHT_DTYPES)}")
    if not isinstance(s["info"], dict) or not isinstance(s["info"].get("checkpoint", {}), dict):
        raise _error(path, "info (and info.checkpoint) must be JSON objects")
    return s


def _check_sizes(path, sizes) -> None:
    if (not isinstance(sizes, list) or not 2 <= len(sizes) <= MAX_TENSORS // 2
            or not all(_is_int(k) and 1 <= k <= MAX_WIDTH for k in sizes)):
        raise _error(path, f"sizes must be a list of 2 or more layer sizes, each in 1..{MAX_WIDTH}")
    n = sum(k1 * (k0 + 1) for k0, k1 in zip(sizes, sizes[1:]))
    if n > MAX_WEIGHTS:
        raise _error(path, f"the network would have {n} weights, more than the cap of {MAX_WEIGHTS}")


def _expected_tensors(s: dict) -> dict:
    """name -> (allowed dtypes, shape) for the tensors the settings call for."""
    k, w = s["sizes"], (_WEIGHT_DTYPES[s["dtype"]],)
    out = {}
    for t in range(len(k) - 1):
        out[f"W.{t}"], out[f"mask.{t}"] = (w, (k[t + 1], k[t])), (_MASK_DTYPES, (k[t + 1], k[t]))
        if s["bias"]:
            out[f"b.{t}"], out[f"bias_mask.{t}"] = (w, (k[t + 1],)), (_MASK_DTYPES, (k[t + 1],))
    return out


def _check_tensor_names(path, s: dict, entries: dict) -> None:
    """Exactly the tensors the settings call for (shapes chain k_0..k_T), plus a checkpoint's state."""
    expected = _expected_tensors(s)
    for name, (dtypes, shape) in expected.items():
        e = entries.get(name)
        if e is None:
            raise _error(path, f"tensor {name!r} is missing (sizes {s['sizes']}, bias={s['bias']})")
        if e.dtype not in dtypes or e.shape != shape:
            raise _error(path, f"tensor {name!r} is {e.dtype} {list(e.shape)}; expected "
                               f"{' or '.join(dtypes)} {list(shape)} for sizes {s['sizes']}")
    is_checkpoint = "checkpoint" in s["info"]
    for name in entries:
        if name not in expected and not (is_checkpoint and name.startswith(_STATE_PREFIX)):
            raise _error(path, f"unexpected tensor {name[:100]!r}")


def _check_values(path, s: dict, arrays: dict) -> None:
    """Masks are 0/1, weights finite, phantom weights exactly 0."""
    pairs = [("W", "mask")] + ([("b", "bias_mask")] if s["bias"] else [])
    for t in range(len(s["sizes"]) - 1):
        for w_name, m_name in pairs:
            w, m = arrays[f"{w_name}.{t}"], arrays[f"{m_name}.{t}"].view(np.uint8)
            if not ((m == 0) | (m == 1)).all():
                raise _error(path, f"tensor {m_name}.{t} has values other than 0 and 1")
            if not np.isfinite(w).all():
                raise _error(path, f"tensor {w_name}.{t} contains NaN or inf")
            if not ((w == 0) | (m == 1)).all():
                raise _error(path, f"tensor {w_name}.{t} is non-zero on a phantom edge (mask 0)")


def _build_network(path, s: dict, arrays: dict) -> Network:
    """The Network from checked settings and arrays (weights copied: safetensors' are read-only)."""
    T = len(s["sizes"]) - 1
    masks = [arrays[f"mask.{t}"].view(np.uint8) == 1 for t in range(T)]
    bias = [arrays[f"bias_mask.{t}"].view(np.uint8) == 1 for t in range(T)] if s["bias"] else False
    acts = s["activations"]
    try:
        net = Network(LayeredGraph.from_masks(masks, bias=bias), activation=acts[:-1],
                      output_activation=acts[-1], loss=s["loss"], dtype=s["dtype"], init="zeros")
        for t in range(T):
            net.W[t] = np.array(arrays[f"W.{t}"])
            if s["bias"]:
                net.b[t] = np.array(arrays[f"b.{t}"])
    except (ValueError, TypeError) as e:
        raise _error(path, f"the settings do not make a valid network: {e}") from None
    net.info = {k: v for k, v in s["info"].items() if k != "checkpoint"}
    return net
