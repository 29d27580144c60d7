"""Robustness (issue 8): bad inputs through the Python API, and the model-file loader.

Every bad input to ``Network.forward``/``predict``/``backprop``/``loss_value`` and ``lp.sgd``
raises ``ValueError`` or ``TypeError`` (never another exception, never a silent NaN). Every
model file either loads as a valid network or raises ``ModelFileError``, within a time and a
memory bound (measured with ``tracemalloc``). Cases are parametrized so that each is named;
``scripts/reliability_report.py`` counts them.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _harnesses import load_harness

import layerprop as lp
from layerprop import io as lpio

# -- the bad-input matrix through the core API ----------------------------------------------------

RNG = np.random.default_rng(0)
X_OK = RNG.normal(size=(5, 3))
Y_OK = np.eye(2)[[0, 1, 0, 1, 1]]


def net(dtype="float64", **kw):
    return lp.Network(lp.LayeredGraph.dense([3, 4, 2]), seed=0, dtype=dtype, **kw)


def _with(value, where=(1, 2), base=X_OK):
    X = base.astype(object if not isinstance(value, float) else float).copy()
    X[where] = value
    return X


BAD_X = {
    "nan": _with(np.nan),
    "inf": _with(np.inf),
    "-inf": _with(-np.inf),
    "complex": X_OK + 1j,
    "complex_zero_imag": X_OK.astype(complex),
    "strings": np.full((5, 3), "a"),
    "numeric_strings": X_OK.astype(str),
    "dict_in_column": _with({}),
    "string_in_object_column": _with("x"),
    "none_in_object_column": _with(None),
    "object_dtype_numbers": X_OK.astype(object),
    "none": None,
    "scalar": 3.0,
    "0_columns": np.ones((5, 0)),
    "1_column": np.ones((5, 1)),
    "1d_wrong_length": np.ones(5),
    "transposed": X_OK.T,
    "3d": np.ones((5, 3, 1)),
    "ragged_list": [[1.0, 2.0, 3.0], [1.0, 2.0]],
    "datetime": np.array(["2020-01-01"] * 15, dtype="datetime64[D]").reshape(5, 3),
}
ENTRY_POINTS = ["forward", "predict", "backprop", "loss_value", "sgd"]


def call(entry, network, X, Y=None):
    n = len(X) if isinstance(X, (list, np.ndarray)) and np.ndim(X[:1]) >= 2 else 1
    Y = np.zeros((n, 2)) if Y is None else Y
    if entry == "forward":
        return network.forward(X)
    if entry == "predict":
        return network.predict(X)
    if entry == "backprop":
        return network.backprop(X, Y)
    if entry == "loss_value":
        return network.loss_value(X, Y)
    return lp.sgd(network, X, Y, iterations=3, progress=False)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_X_raises_a_clear_error(case, entry):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way to the error
        with pytest.raises((ValueError, TypeError), match="X"):
            call(entry, net(), BAD_X[case])


@pytest.mark.parametrize("entry", ["backprop", "loss_value", "sgd"])
def test_zero_rows_raise_a_clear_error(entry):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="no rows"):
            call(entry, net(), np.ones((0, 3)), np.ones((0, 2)))


def test_zero_rows_forward_is_an_empty_batch():
    assert net().predict(np.ones((0, 3))).shape == (0, 2)


GOOD_X = {
    "1_row": (X_OK[:1], X_OK[:1]),
    "1d_single_example": (X_OK[0], X_OK[:1]),
    "list_of_lists": (X_OK.tolist(), X_OK),
    "int": (np.arange(15).reshape(5, 3), np.arange(15.0).reshape(5, 3)),
    "bool": (X_OK > 0, (X_OK > 0).astype(float)),
    "float32": (X_OK.astype(np.float32), X_OK.astype(np.float32).astype(float)),
    "fortran_order": (np.asfortranarray(X_OK), X_OK),
    "non_contiguous": (np.repeat(X_OK, 2, axis=1)[:, ::2], X_OK),
}


@pytest.mark.parametrize("case", list(GOOD_X))
def test_valid_variants_predict_as_their_plain_twin(case):
    X, twin = GOOD_X[case]
    out, want = net().predict(X), net().predict(twin)
    np.testing.assert_array_equal(np.reshape(out, np.shape(want)), want)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "identity"])
def test_1e308_features_give_finite_weights_or_a_clear_error(act, dtype):
    """1e308 is finite: float64 either trains to finite weights or stops with DivergenceError;
    float32 cannot hold it and refuses it as input."""
    network = net(dtype, activation=act, output_activation="identity")
    X = np.where(np.eye(5, 3) > 0, 1e308, X_OK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow inside the math is expected
        try:
            res = lp.sgd(network, X, Y_OK, iterations=20, progress=False)
        except (lp.DivergenceError, ValueError) as e:
            assert dtype == "float32" or isinstance(e, lp.DivergenceError), e
            return
    assert all(np.isfinite(w).all() for w in res.network.W)


BAD_Y = {
    "nan": np.where(np.eye(5, 2) > 0, np.nan, Y_OK),
    "inf": np.where(np.eye(5, 2) > 0, np.inf, Y_OK),
    "complex": Y_OK + 1j,
    "strings": np.full((5, 2), "a"),
    "dicts": np.full((5, 2), {}, dtype=object),
    "too_short": Y_OK[:-1],
    "too_long": np.vstack([Y_OK, Y_OK[:1]]),
    "wrong_width": np.ones((5, 3)),
    "1d": np.ones(5),
    "transposed": Y_OK.T,
    "none": None,
}


@pytest.mark.parametrize("entry", ["backprop", "loss_value", "sgd"])
@pytest.mark.parametrize("case", list(BAD_Y))
def test_bad_Y_raises_a_clear_error(case, entry):
    Y = BAD_Y[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises((ValueError, TypeError), match="Y"):
            if entry == "backprop":
                net().backprop(X_OK, Y)
            elif entry == "loss_value":
                net().loss_value(X_OK, Y)
            else:
                lp.sgd(net(), X_OK, Y, iterations=2, progress=False)


BAD_WEIGHTS = {"nan": [1, np.nan, 1, 1, 1], "negative": [1, -1, 1, 1, 1], "all_zero": [0] * 5,
               "too_short": [1] * 4, "2d": np.ones((5, 1)), "strings": ["a"] * 5}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_bad_sample_weight_raises_a_clear_error(case):
    with pytest.raises((ValueError, TypeError), match="sample_weight"):
        net().backprop(X_OK, Y_OK, sample_weight=np.asarray(BAD_WEIGHTS[case]))
    with pytest.raises((ValueError, TypeError), match="sample_weight"):
        lp.sgd(net(), X_OK, Y_OK, iterations=2, sample_weight=np.asarray(BAD_WEIGHTS[case]), progress=False)


BAD_VALIDATION = {"nan": (np.where(np.eye(5, 3) > 0, np.nan, X_OK), Y_OK), "short_Y": (X_OK, Y_OK[:-1]),
                  "wrong_width": (X_OK[:, :2], Y_OK), "not_a_pair": X_OK}


@pytest.mark.parametrize("case", list(BAD_VALIDATION))
def test_bad_validation_data_raises_a_clear_error(case):
    with pytest.raises((ValueError, TypeError)):
        lp.sgd(net(), X_OK, Y_OK, iterations=2, validation=BAD_VALIDATION[case], progress=False)


# -- model files: load or ModelFileError, in bounded time and memory ------------------------------

TIME_BOUND_S = 2.0
MEMORY_BOUND = 64 * 2**20  # bytes allocated by Python (tracemalloc peak) while reading one file


def valid_model_bytes(tmp_path, **kw) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        network = lp.Network(lp.LayeredGraph.random([3, 4, 2], 0.7, seed=0), activation="tanh",
                             output_activation="sigmoid", seed=0, **kw)
    return lpio.save(network, tmp_path / "valid.safetensors").read_bytes()


def split(data: bytes):
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, body: bytes, raw: bytes | None = None) -> bytes:
    raw = json.dumps(header).encode() if raw is None else raw
    return len(raw).to_bytes(8, "little") + raw + body


def with_settings(data: bytes, **changes) -> bytes:
    header, body = split(data)
    s = json.loads(header["__metadata__"]["layerprop"])
    s.update(changes)
    header["__metadata__"]["layerprop"] = json.dumps(s)
    return join(header, body)


def _load_or_error(path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a sparse file may cut off a neuron
            return lpio.load(path)
    except lpio.ModelFileError as e:
        return e


def measured_load(path):
    """(outcome, seconds, tracemalloc peak bytes) of io.load on ``path``: timed on its own,
    then read again under tracemalloc (which slows Python down several times)."""
    start = time.perf_counter()
    out = _load_or_error(path)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    try:
        again = _load_or_error(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert type(again) is type(out)
    return out, elapsed, peak


def assert_loads_or_refuses(path, expect=None, time_bound=TIME_BOUND_S):
    out, elapsed, peak = measured_load(path)
    assert elapsed < time_bound, f"load took {elapsed:.2f} s"
    assert peak < MEMORY_BOUND + 4 * os.path.getsize(path), f"load allocated {peak / 2**20:.1f} MiB"
    if isinstance(out, lpio.ModelFileError):
        assert str(path.name) in str(out)
        assert expect != "load", f"a valid file was refused: {out}"
    else:
        assert isinstance(out, lp.Network) and expect != "refuse"
        assert all(np.isfinite(np.asarray(w)).all() for w in out.W)
    return out


def _pickle_bytes(_):
    return pickle.dumps({"W": np.ones((2, 2))}, protocol=4)


def _huge_header_length(d):
    return (2**64 - 1).to_bytes(8, "little") + d[8:]


def _header_length_past_eof(d):
    return (len(d) + 1).to_bytes(8, "little") + d[8:]


def _duplicate_key(d):
    header, body = split(d)
    raw = json.dumps(header).encode()
    name = next(k for k in header if k != "__metadata__")
    entry = json.dumps({name: header[name]})[1:-1].encode()
    return join(None, body, raw[:-1] + b", " + entry + b"}")


def _overlapping_offsets(d):
    header, body = split(d)
    names = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    a, b = header[names[0]], header[names[1]]
    b["data_offsets"] = [a["data_offsets"][0], a["data_offsets"][0] + b["data_offsets"][1] - b["data_offsets"][0]]
    return join(header, body)


def _shape_overflow(d):
    header, body = split(d)
    header["W.0"]["shape"] = [2**32, 2**32, 2**2]  # 2^66 elements: overflows int64 byte counts
    return join(header, body)


def _100k_tensors(d):
    header, body = split(d)
    for i in range(100_000):
        header[f"t{i}"] = {"dtype": "U8", "shape": [0], "data_offsets": [len(body), len(body)]}
    return join(header, body)


def _nan_weight(d):
    header, body = split(d)
    begin, _ = header["W.0"]["data_offsets"]
    body = bytearray(body)
    fmt = "<d" if header["W.0"]["dtype"] == "F64" else "<f"
    mask_begin = header["mask.0"]["data_offsets"][0]
    j = body[mask_begin:mask_begin + 12].index(1)  # a real edge (a phantom NaN is refused anyway)
    struct.pack_into(fmt, body, begin + j * struct.calcsize(fmt), float("nan"))
    return join(header, bytes(body))


def _shapes_do_not_chain(d):
    return with_settings(d, sizes=[3, 5, 2])


MODEL_CASES = {
    "pickle_renamed": (_pickle_bytes, "refuse"),
    "empty": (lambda d: b"", "refuse"),
    "huge_header_length": (_huge_header_length, "refuse"),
    "header_length_past_eof": (_header_length_past_eof, "refuse"),
    "duplicate_tensor_key": (_duplicate_key, "refuse"),
    "overlapping_offsets": (_overlapping_offsets, "refuse"),
    "shape_overflow": (_shape_overflow, "refuse"),
    "100k_tensors": (_100k_tensors, "refuse"),
    "nan_weight": (_nan_weight, "refuse"),
    "unknown_activation": (lambda d: with_settings(d, activations=["tanh", "no_such_fn"]), "refuse"),
    "activation_dunder_name": (lambda d: with_settings(d, activations=["__class__", "sigmoid"]), "refuse"),
    "unknown_loss": (lambda d: with_settings(d, loss="os.system"), "refuse"),
    "shapes_do_not_chain": (_shapes_do_not_chain, "refuse"),
    "giant_sizes": (lambda d: with_settings(d, sizes=[10**6, 10**6, 10**6]), "refuse"),
    "unmodified": (lambda d: d, "load"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_model_file_case(tmp_path, case):
    make, expect = MODEL_CASES[case]
    path = tmp_path / "m.safetensors"
    path.write_bytes(make(valid_model_bytes(tmp_path)))
    # a 9 MB header of 100k entries is parsed and refused in about 1 s; allow for a busy machine
    assert_loads_or_refuses(path, expect, time_bound=10.0 if case == "100k_tensors" else TIME_BOUND_S)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_model_file_truncated_at_every_offset(tmp_path, dtype):
    """Every prefix of a valid file is refused, each within the bounds."""
    data = valid_model_bytes(tmp_path, dtype=dtype)
    path = tmp_path / "cut.safetensors"
    worst = 0.0
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        start = time.perf_counter()
        with pytest.raises(lpio.ModelFileError):
            lpio.load(path)
        worst = max(worst, time.perf_counter() - start)
    assert worst < TIME_BOUND_S


EXAMPLES = int(os.environ.get("LAYERPROP_FUZZ_EXAMPLES", "0")) or 150
_settings = settings(max_examples=EXAMPLES, deadline=None, database=None,
                     derandomize="LAYERPROP_FUZZ_EXAMPLES" not in os.environ,
                     suppress_health_check=list(HealthCheck))


@_settings
@given(data=st.data())
def test_model_file_property_bounded(tmp_path_factory, data):
    """Structured mutations (truncate, append, overwrite bytes, change the header length),
    each measured for time and memory."""
    folder = tmp_path_factory.mktemp("prop")
    raw = bytearray(valid_model_bytes(folder))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["cut", "append", "poke", "length"]))
        if op == "cut":
            raw = raw[:data.draw(st.integers(0, len(raw)))]
        elif op == "append":
            raw += data.draw(st.binary(max_size=64))
        elif op == "poke" and raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        elif op == "length":
            raw[:8] = data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little")
    path = folder / "m.safetensors"
    path.write_bytes(bytes(raw))
    assert_loads_or_refuses(path)


# -- the CSV/NPZ readers under hypothesis (the atheris harness fuzz/fuzz_csv.py's property) ------

csv_harness = load_harness("fuzz_csv")
_CSV_SEEDS = {}


def _csv_seed(name):
    if not _CSV_SEEDS:
        import tempfile
        from pathlib import Path

        for p in csv_harness.seed_files(Path(tempfile.mkdtemp(prefix="layerprop-csv-seed-"))):
            _CSV_SEEDS[p.name] = p.read_bytes()
    return _CSV_SEEDS[name]


@_settings
@given(seed=st.sampled_from(["plain.csv", "bom_crlf.csv", "quoted.csv", "semicolon.csv", "tab.tsv", "small.npz"]),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(list(b',;\t\n\r".-+eE0123456789 \x00\xff'))),
                      max_size=6),
       cut=st.integers(0, 10**6), tail=st.binary(max_size=16))
def test_data_reader_property(seed, edits, cut, tail):
    """Mutated CSV/TSV/NPZ bytes: read as finite, well-shaped data or DataError, under 2 s."""
    raw = bytearray(_csv_seed(seed))
    for i, value in edits:
        raw[i % len(raw)] = value
    csv_harness.check_bytes(bytes(raw[:cut % (len(raw) + 1)]) + tail)


# found by fuzz/fuzz_csv.py (atheris, 60 s): a zip header claiming version 9.8 raised NotImplementedError
ATHERIS_CSV_CRASH_1 = b"PK\x03\x04-\x00\x00\x00\x00\x00\x00\x00!\x00\x8e\x13\xd44\xff\xff\xff\xff\xff\xff\xff\xff\x05\x00\x14\x00X.npy\x01\x00\x10\x00\xb0\x00\x00\x00\x00\x00\x00\x00\xb0\x00\x00\x00\x00\x00\x00\x00\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortra3,), }        \xda\xdf                                                  \n\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00PK\x01\x02-\x03-\x00\x00\x00\x00\x00\x00\x00!\x00\x8e\x13\xd44\xb0\x00\x00\x00\xb0\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x00\x00\x00\x00X.npyPK\x01\x02-\x03bel\n\x00\x00\x00\x00!\x00\x8aG7\xa8\x98\x00\x00\x00\x98\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\xe7\x00\x00\x00y.npyPK\x05\x06\x00\x00\x00\x00\x02\x00\x02\x00f\x00\x00\x00\xb6\x01\x00\x00\x00\x00"


def test_data_reader_atheris_regression_zip_version():
    assert all(o.endswith("refused") for o in csv_harness.check_bytes(ATHERIS_CSV_CRASH_1))
