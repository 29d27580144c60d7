"""Model files: round trips, atomic writes, checkpoints, and every way a file can be refused."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import types
import warnings
import zipfile

import numpy as np
import pytest
import safetensors.numpy

import layerprop as lp
from layerprop import io as lpio
from layerprop.io import ModelFileError

# -- helpers ------------------------------------------------------------------------------------


def make_net(sizes=(3, 5, 4, 2), sparse=False, bias=True, dtype="float64", activation="tanh",
             output_activation="sigmoid", loss="squared", seed=0):
    if sparse:
        graph = lp.LayeredGraph.random(sizes, 0.5, seed=seed, bias=bias)
    else:
        graph = lp.LayeredGraph.dense(sizes, bias=bias)
    return lp.Network(graph, activation=activation, output_activation=output_activation, loss=loss,
                      dtype=dtype, seed=seed)


def saved(tmp_path, net=None, name="m.safetensors", **kw):
    return lpio.save(net if net is not None else make_net(), tmp_path / name, **kw)


def split(path):
    """(header dict, settings dict, body bytes) of a safetensors file."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return header, json.loads(header["__metadata__"]["layerprop"]), data[8 + n:]


def assemble(header_text, body=b""):
    raw = header_text.encode() if isinstance(header_text, str) else header_text
    return len(raw).to_bytes(8, "little") + raw + body


def rewrite(path, tensors=None, settings=None, metadata=None):
    """Re-save a valid file with changed tensors and/or settings (well-formed safetensors)."""
    arrays = {k: np.array(v) for k, v in safetensors.numpy.load(path.read_bytes()).items()}
    s = split(path)[1]
    arrays.update(tensors or {})
    arrays = {k: v for k, v in arrays.items() if v is not None}
    s.update(settings or {})
    meta = metadata if metadata is not None else {"layerprop": json.dumps(s)}
    path.write_bytes(safetensors.numpy.save(arrays, metadata=meta))
    return path


def with_entry(tmp_path, tensor, key, value):
    """A saved model whose header has ``header[tensor][key] = value`` (the data unchanged)."""
    header, _, body = split(saved(tmp_path))
    header[tensor][key] = value
    path = tmp_path / "s.safetensors"
    path.write_bytes(assemble(json.dumps(header), body))
    return path


def refused(path, *words):
    with pytest.raises(ModelFileError) as info:
        lpio.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    problem = message[len(f"{path}: "):]
    for w in words:
        assert w in problem, message
    return message


def no_temp_files(folder):
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False, "masked"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_round_trip(tmp_path, sparse, bias, dtype):
    if bias == "masked":
        bias = [np.arange(k) % 2 == 0 for k in (5, 4, 2)]
    net = make_net(sparse=sparse, bias=bias, dtype=dtype)
    net.info = {"classes": ["a", "b"], "feature_names": ["x0", "x1", "x2"], "task": "classification",
                "input_scaling": {"mean": [0.5, 1.0, -2.0], "scale": [1.0, 2.0, 3.0]}}
    back = lpio.load(saved(tmp_path, net))
    assert back.k == net.k and back.activation_names == net.activation_names
    assert back.loss_name == net.loss_name and back.dtype == net.dtype
    assert back.info == net.info
    for t in range(net.T):
        np.testing.assert_array_equal(back.W[t], net.W[t])
        np.testing.assert_array_equal(back.masks[t], net.masks[t])
        if net.bias_masks is None:
            assert back.bias_masks is None and back.b[t] is None
        else:
            np.testing.assert_array_equal(back.b[t], net.b[t])
            np.testing.assert_array_equal(back.bias_masks[t], net.bias_masks[t])
    X = np.random.default_rng(1).normal(size=(7, 3))
    assert np.array_equal(back.predict(X), net.predict(X))  # bitwise
    assert back.predict(X).dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", sorted(lp.ACTIVATIONS))
def test_every_activation_name_round_trips(tmp_path, name):
    net = make_net(activation=name, output_activation=name)
    back = lpio.load(saved(tmp_path, net))
    assert back.activation_names == (name, name, name)
    X = np.random.default_rng(2).normal(size=(4, 3))
    assert np.array_equal(back.predict(X), net.predict(X))


@pytest.mark.parametrize("loss", sorted(lp.LOSSES))
def test_every_loss_round_trips(tmp_path, loss):
    net = make_net(output_activation=None, loss=loss)
    back = lpio.load(saved(tmp_path, net))
    assert back.loss_name == loss and back.activation_names == net.activation_names


def test_depth_one_network_round_trips(tmp_path):
    net = make_net(sizes=(2, 1))
    assert lpio.load(saved(tmp_path, net)).k == (2, 1)


def test_loaded_weights_are_writable_copies(tmp_path):
    back = lpio.load(saved(tmp_path))
    assert all(w.flags.writeable for w in back.W) and all(v.flags.writeable for v in back.b)


def test_info_argument_merges_over_network_info(tmp_path):
    net = make_net()
    net.info = {"task": "regression", "target_name": "y"}
    back = lpio.load(saved(tmp_path, net, info={"task": "classification", "n": np.int64(3),
                                                  "scale": np.array([1.5, 2.0])}))
    assert back.info == {"task": "classification", "target_name": "y", "n": 3, "scale": [1.5, 2.0]}


def test_save_training_result_takes_recipe_and_metrics(tmp_path):
    net = make_net()
    net.info = {"metrics": {"train_loss": 0.25}}
    result = types.SimpleNamespace(network=net, recipe={"eta": 0.1, "lam": 0.0}, best_iteration=40,
                                   best_score=0.875)
    back = lpio.load(saved(tmp_path, result))
    assert back.info["recipe"] == {"eta": 0.1, "lam": 0.0}
    assert back.info["metrics"] == {"train_loss": 0.25, "best_iteration": 40, "best_score": 0.875}


def test_save_fitted_estimator(tmp_path):
    estimator = types.SimpleNamespace(network_=make_net(dtype="float32"))
    assert lpio.load(saved(tmp_path, estimator)).dtype == np.float32


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError):
        lpio.save({"W": [1]}, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("info", [{"bad": float("nan")}, {"bad": object()}, {"checkpoint": {}}])
def test_save_refuses_bad_info_and_writes_nothing(tmp_path, info):
    with pytest.raises(ValueError):
        saved(tmp_path, info=info)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    net = make_net()
    net.W[1][0, 0] = np.nan  # in place, as a diverged training run would leave it
    with pytest.raises(ValueError, match="NaN or inf"):
        saved(tmp_path, net)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_custom_activation(tmp_path):
    act = (lambda a: a, lambda a: np.ones_like(a))
    net = lp.Network(lp.LayeredGraph.dense([2, 2, 1]), activation=act, output_activation="sigmoid")
    with pytest.raises(ValueError, match="custom"):
        saved(tmp_path, net)
    assert list(tmp_path.iterdir()) == []


def test_read_info_reads_settings_without_weights(tmp_path):
    net = make_net(sizes=(3, 4, 1))
    net.info = {"task": "regression"}
    path = saved(tmp_path, net)
    info = lpio.read_info(path)
    assert info == {"format": "layerprop", "version": 1, "sizes": [3, 4, 1], "bias": True,
                    "activations": ["tanh", "sigmoid"], "loss": "squared", "dtype": "float64",
                    "info": {"task": "regression"}}
    # read_info checks the header only: a NaN weight shows up in load, not in read_info
    rewrite(path, tensors={"W.0": np.full((4, 3), np.nan)})
    assert lpio.read_info(path)["sizes"] == [3, 4, 1]
    refused(path, "NaN")


# -- atomic writes ------------------------------------------------------------------------------


def test_atomic_write_bytes_str_and_callable(tmp_path):
    assert lpio.atomic_write(tmp_path / "a.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert lpio.atomic_write(tmp_path / "b.txt", "h\u00e9").read_text("utf-8") == "h\u00e9"
    lpio.atomic_write(tmp_path / "c.npy", lambda f: np.save(f, np.arange(3)))
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.arange(3))
    assert no_temp_files(tmp_path)


def test_atomic_write_refuses_other_data(tmp_path):
    with pytest.raises(TypeError):
        lpio.atomic_write(tmp_path / "a", 3)
    assert list(tmp_path.iterdir()) == []


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = saved(tmp_path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        lpio.save(make_net(sizes=(2, 2)), path)
    assert path.read_bytes() == before and no_temp_files(tmp_path)


def test_failed_write_midway_keeps_old_file(tmp_path):
    path = lpio.atomic_write(tmp_path / "x.bin", b"old")

    def half_then_fail(f):
        f.write(b"new, half")
        raise KeyboardInterrupt  # even an interrupt removes the temporary file

    with pytest.raises(KeyboardInterrupt):
        lpio.atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old" and no_temp_files(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OSError):
            saved(folder)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_unwritable_folder_simulated(tmp_path, monkeypatch):
    """The same as the read-only folder test, where root ignores permissions."""
    real_open = os.open

    def deny(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(PermissionError):
        saved(tmp_path)
    assert list(tmp_path.iterdir()) == []


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_remove_stale_temp_files(tmp_path):
    dead, me = dead_pid(), os.getpid()
    stale = tmp_path / f".m.safetensors.{dead}.0123abcd.tmp"
    in_progress = tmp_path / f".m.safetensors.{me}.89abcdef.tmp"
    old = tmp_path / f".other.bin.{me}.00000000.tmp"
    unrelated = [tmp_path / "m.safetensors", tmp_path / ".hidden.tmp", tmp_path / f".x.{dead}.zz.tmp"]
    for p in [stale, in_progress, old, *unrelated]:
        p.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert lpio.remove_stale_temp_files(tmp_path, name="other.bin") == [old]
    assert lpio.remove_stale_temp_files(tmp_path) == [stale]
    assert sorted(tmp_path.iterdir()) == sorted([in_progress, *unrelated])


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killed_write_leaves_old_file_and_a_removable_temp(tmp_path):
    path = lpio.atomic_write(tmp_path / "m.bin", b"old")
    ready = tmp_path / "ready"
    code = (
        "import pathlib, time, sys\n"
        "from layerprop.io import atomic_write\n"
        "def slow(f):\n"
        "    f.write(b'new' * 1000); f.flush()\n"
        f"    pathlib.Path({str(ready)!r}).touch()\n"
        "    time.sleep(60)\n"
        f"atomic_write({str(path)!r}, slow)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 30
        while not ready.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert ready.exists(), "the writer did not start"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert path.read_bytes() == b"old"
    removed = lpio.remove_stale_temp_files(tmp_path, name="m.bin")
    assert len(removed) == 1 and removed[0].name.startswith(f".m.bin.{proc.pid}.")
    assert no_temp_files(tmp_path)


# -- checkpoints --------------------------------------------------------------------------------


def checkpoint_state():
    rng_state = np.random.default_rng(5).bit_generator.state["state"]
    return {"m.W.0": np.full((5, 3), 0.5), "v.b.1": np.arange(4, dtype=np.float32),
            "rng": np.array([rng_state["state"] & (2**64 - 1), rng_state["state"] >> 64], dtype=np.uint64),
            "flags": np.array([True, False]), "empty": np.zeros((0, 3)), "t": np.array(7, dtype=np.int64)}


def test_checkpoint_round_trip(tmp_path):
    net = make_net(sparse=True)
    net.info = {"task": "classification"}
    state, info = checkpoint_state(), {"iteration": 120, "seed": 7, "recipe": {"eta": 0.05}}
    path = lpio.save_checkpoint(tmp_path / "ck.safetensors", net, state, info)
    back, back_state, back_info = lpio.load_checkpoint(path)
    assert back_info == info and back.info == {"task": "classification"}
    assert sorted(back_state) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back_state[key], value)
        assert back_state[key].dtype == value.dtype and back_state[key].flags.writeable
    for t in range(net.T):
        np.testing.assert_array_equal(back.W[t], net.W[t])
    assert lpio.read_info(path)["info"]["checkpoint"] == info


def test_load_reads_a_checkpoint_as_a_model(tmp_path):
    net = make_net()
    path = lpio.save_checkpoint(tmp_path / "ck.safetensors", net, checkpoint_state(), {"iteration": 3})
    back = lpio.load(path)
    assert "checkpoint" not in back.info
    X = np.ones((2, 3))
    assert np.array_equal(back.predict(X), net.predict(X))
    # and saving it again gives a plain model file
    assert "checkpoint" not in lpio.read_info(lpio.save(back, tmp_path / "m.safetensors"))["info"]


def test_load_checkpoint_refuses_a_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        lpio.load_checkpoint(saved(tmp_path))


@pytest.mark.parametrize("state", [{"": np.ones(2)}, {3: np.ones(2)}, {"s": np.array(["a"])},
                                   {"c": np.ones(2, dtype=complex)}])
def test_save_checkpoint_refuses_bad_state(tmp_path, state):
    with pytest.raises(ValueError):
        lpio.save_checkpoint(tmp_path / "ck.safetensors", make_net(), state, {})
    assert list(tmp_path.iterdir()) == []


# -- refused files ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    refused(tmp_path / "nope.safetensors", "no such file")


def test_folder(tmp_path):
    refused(tmp_path, "folder")


def test_empty_file(tmp_path):
    (tmp_path / "e.safetensors").write_bytes(b"")
    refused(tmp_path / "e.safetensors", "empty")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_renamed(tmp_path, protocol):
    path = tmp_path / "p.safetensors"
    path.write_bytes(pickle.dumps({"W": np.ones(3)}, protocol=protocol))
    refused(path, "pickle", "not a layerprop model")


def test_zip(tmp_path):
    path = tmp_path / "z.safetensors"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data.pkl", b"x" * 100)
    refused(path, "zip", "not a layerprop model")


def test_npy(tmp_path):
    path = tmp_path / "n.safetensors"
    with open(path, "wb") as f:
        np.save(f, np.ones(3))
    refused(path, "NumPy")


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    path = tmp_path / "r.safetensors"
    path.write_bytes(np.random.default_rng(seed).bytes(2000))
    refused(path)


def test_truncated_at_every_offset(tmp_path):
    data = saved(tmp_path, make_net(sizes=(2, 3, 1), sparse=True)).read_bytes()
    path = tmp_path / "t.safetensors"
    for n in range(len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(ModelFileError):
            lpio.load(path)
        with pytest.raises(ModelFileError):
            lpio.read_info(path)
    path.write_bytes(data)
    lpio.load(path)


@pytest.mark.parametrize("n", [2**64 - 1, 2**63, 10**9, 99_999_999])
def test_huge_header_length(tmp_path, n):
    path = tmp_path / "h.safetensors"
    path.write_bytes(n.to_bytes(8, "little") + b'{"a": 1}')
    start = time.perf_counter()
    refused(path, "header length")
    assert time.perf_counter() - start < 1


def test_header_length_over_cap_in_a_big_sparse_file(tmp_path):
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write((150_000_000).to_bytes(8, "little") + b"{")
        f.truncate(200_000_000)  # sparse: no disk used
    start = time.perf_counter()
    refused(path, "header cap")
    assert time.perf_counter() - start < 1


def test_duplicate_tensor_key_in_header(tmp_path):
    header, _, body = split(saved(tmp_path))
    text = json.dumps(header)
    w0 = json.dumps({"W.0": header["W.0"]})[1:-1]
    path = tmp_path / "d.safetensors"
    path.write_bytes(assemble(text[:-1] + ", " + w0 + "}", body))
    refused(path, "twice", "W.0")


def test_duplicate_key_in_layerprop_metadata(tmp_path):
    path = saved(tmp_path)
    s = split(path)[1]
    text = json.dumps(s)[:-1] + ', "loss": "squared"}'
    rewrite(path, metadata={"layerprop": text})
    refused(path, "twice", "loss")


def test_overlapping_offsets(tmp_path):
    header, _, body = split(saved(tmp_path, make_net(sizes=(2, 2))))
    begin, end = header["W.0"]["data_offsets"]
    header["b.0"]["data_offsets"] = [begin, begin + 16]  # b.0 is (2,) float64: 16 bytes
    path = tmp_path / "o.safetensors"
    path.write_bytes(assemble(json.dumps(header), body))
    refused(path, "overlap")


def test_gap_and_trailing_bytes(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data + b"\x00" * 8)
    refused(path, "truncated, padded or corrupt")


@pytest.mark.parametrize("shape", [[2**62, 2**62, 2**62], [2**64, 1], [-1, 2], [1.5], [True, 2], "3"])
def test_bad_shape(tmp_path, shape):
    refused(with_entry(tmp_path, "W.0", "shape", shape), "W.0")


@pytest.mark.parametrize("dtype", ["C64", "BF16", "F8_E4M3", "object", 3])
def test_bad_dtype(tmp_path, dtype):
    refused(with_entry(tmp_path, "mask.0", "dtype", dtype), "dtype")


@pytest.mark.parametrize("offsets", [[-8, 0], [8, 0], [0], [0, 10**30], ["0", "8"]])
def test_bad_offsets(tmp_path, offsets):
    refused(with_entry(tmp_path, "W.0", "data_offsets", offsets), "W.0")


def test_100k_tensors_in_header_bounded_time(tmp_path):
    header = {f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(100_000)}
    header["__metadata__"] = split(saved(tmp_path))[0]["__metadata__"]
    path = tmp_path / "many.safetensors"
    path.write_bytes(assemble(json.dumps(header), b"\x00" * 100_000))
    start = time.perf_counter()
    refused(path, "100000 tensors")
    assert time.perf_counter() - start < 3


def test_header_with_millions_of_json_arrays_bounded_time(tmp_path):
    """90 MB of '[],' would take ~16 s and 2 GB to parse: refused by counting first."""
    path = tmp_path / "arrays.safetensors"
    path.write_bytes(assemble('{"a": [' + "[]," * 3_000_000 + "[]]}"))
    start = time.perf_counter()
    refused(path, "JSON objects and arrays")
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("header_text", [
    b"\xff\xfe{}",  # not UTF-8
    '{"W.0": NaN}',
    "[" * 100_000 + "]" * 100_000,
    "{" + '"a":' * 1 + "[" * 100_000 + "]" * 100_000 + "}",
    "{'single': 'quotes'}",
    '{"a": 1} trailing',
    '{"__metadata__": {"layerprop": 3}}',
    '{"__metadata__": "x"}',
    "{}",
])
def test_malformed_header_json(tmp_path, header_text):
    path = tmp_path / "j.safetensors"
    path.write_bytes(assemble(header_text))
    refused(path)


def test_plain_safetensors_file_without_layerprop_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    path.write_bytes(safetensors.numpy.save({"weight": np.ones(3)}))
    refused(path, "not a layerprop model")


def test_non_finite_weights(tmp_path):
    path = saved(tmp_path)
    header, _, body = split(path)
    begin = header["W.1"]["data_offsets"][0]
    body = body[:begin] + np.array([np.inf]).tobytes() + body[begin + 8:]
    path.write_bytes(assemble(json.dumps(header), body))
    refused(path, "W.1", "NaN or inf")


@pytest.mark.parametrize("change, words", [
    ({"activations": ["tanh", "evil", "sigmoid"]}, ["activations"]),
    ({"activations": ["tanh", "__class__", "sigmoid"]}, ["activations"]),
    ({"activations": ["tanh", "sigmoid"]}, ["activations"]),
    ({"activations": "tanh"}, ["activations"]),
    ({"loss": "hinge"}, ["loss"]),
    ({"loss": "__init__"}, ["loss"]),
    ({"version": 2}, ["version 2"]),
    ({"version": "1"}, ["version"]),
    ({"version": True}, ["version"]),
    ({"format": "pytorch"}, ["format"]),
    ({"dtype": "float16"}, ["dtype"]),
    ({"bias": 1}, ["bias"]),
    ({"sizes": [3, 5, 4], "activations": ["tanh", "sigmoid"]}, ["unexpected tensor 'W.2'"]),
    ({"sizes": [3, 5, 4, 3]}, ["tensor 'W.2'", "[3, 4]"]),
    ({"sizes": [3, 0, 4, 2]}, ["sizes"]),
    ({"sizes": [3, 5, 4, 2, 1]}, ["activations"]),
    ({"sizes": [3, 2_000_000, 4, 2]}, ["sizes"]),
    ({"sizes": [100_000, 100_000, 100_000]}, ["cap"]),
    ({"info": []}, ["info"]),
    ({"extra": 1}, ["keys"]),
    ({"info": {"checkpoint": 3}}, ["checkpoint"]),
])
def test_bad_settings(tmp_path, change, words):
    path = rewrite(saved(tmp_path), settings=change)
    refused(path, *words)
    with pytest.raises(ModelFileError):
        lpio.read_info(path)


def test_shapes_that_do_not_chain(tmp_path):
    path = rewrite(saved(tmp_path), tensors={"W.1": np.zeros((4, 6)), "mask.1": np.ones((4, 6), np.uint8)})
    refused(path, "W.1", "[4, 6]")


def test_weight_dtype_must_match(tmp_path):
    path = rewrite(saved(tmp_path), tensors={"W.0": np.zeros((5, 3), np.float32)})
    refused(path, "W.0", "F64")


def test_mask_must_be_integer_or_bool(tmp_path):
    path = rewrite(saved(tmp_path), tensors={"mask.0": np.ones((5, 3), np.float64)})
    refused(path, "mask.0")


def test_bool_masks_are_accepted(tmp_path):
    net = make_net(sparse=True)
    path = rewrite(saved(tmp_path, net), tensors={f"mask.{t}": np.asarray(net.masks[t]) for t in range(3)})
    np.testing.assert_array_equal(lpio.load(path).masks[1], net.masks[1])


@pytest.mark.parametrize("dtype", [np.uint8, bool])
def test_mask_with_value_2(tmp_path, dtype):
    path = saved(tmp_path, make_net(sparse=True))
    header, _, body = split(path)
    header["mask.0"]["dtype"] = "U8" if dtype is np.uint8 else "BOOL"
    begin = header["mask.0"]["data_offsets"][0]
    body = body[:begin] + b"\x02" + body[begin + 1:]
    path.write_bytes(assemble(json.dumps(header), body))
    refused(path, "mask.0", "0 and 1")


def test_non_zero_phantom_weight(tmp_path):
    net = make_net(sparse=True)
    i, j = np.argwhere(~np.asarray(net.masks[0]))[0]
    W0 = np.array(net.W[0])
    W0[i, j] = 0.5
    refused(rewrite(saved(tmp_path, net), tensors={"W.0": W0}), "W.0", "phantom")


def test_non_zero_phantom_bias(tmp_path):
    net = make_net(bias=[np.array([True, False, True, True, False]), np.ones(4, bool), np.ones(2, bool)])
    refused(rewrite(saved(tmp_path, net), tensors={"b.0": np.ones(5)}), "b.0", "phantom")


@pytest.mark.parametrize("tensors, words", [
    ({"W.3": np.zeros((1, 2))}, ["unexpected tensor"]),
    ({"state.m": np.zeros(2)}, ["unexpected tensor"]),  # state tensors only in a checkpoint
    ({"b.1": None}, ["b.1", "missing"]),
    ({"bias_mask.2": None}, ["bias_mask.2", "missing"]),
])
def test_tensor_set_must_match(tmp_path, tensors, words):
    refused(rewrite(saved(tmp_path), tensors=tensors), *words)


def test_loss_needing_another_output_activation(tmp_path):
    path = rewrite(saved(tmp_path), settings={"loss": "binary_cross_entropy",
                                             "activations": ["tanh", "tanh", "identity"]})
    refused(path, "valid network", "binary_cross_entropy")


def test_valid_sparse_file_loads_without_warnings(tmp_path):
    net = make_net(sparse=True)
    path = saved(tmp_path, net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lpio.load(path)
