"""Robustness (issue 8): crashes and failing disks.

* SIGKILL (a real subprocess) during training, during a model write and during a checkpoint
  write: the previous file stays intact and loadable, the next run removes the temporary file
  the killed write left, and ``--resume`` gives bitwise the weights of an uninterrupted run.
* A full disk (``OSError(ENOSPC)`` from the file's ``write`` or from ``fsync``) and a read-only
  output folder, for ``io.save`` and the CLI's ``-o``: the old file is untouched, no temporary
  file is left, and the CLI prints one ``Error:`` line.

Read-only folders: the tests run as root, and root ignores ``chmod`` permission bits, so a
``chmod 0500`` folder is still writable. A read-only *bind mount* is read-only for root as well
(EROFS): the real test uses one (``mount --bind`` + ``remount,ro``) and is skipped where
mounting is not allowed; a second test simulates EROFS by refusing ``os.open(..., O_CREAT)``.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from _procs import kill, wait_for

import layerprop as lp
from layerprop import io as lpio
from layerprop.cli import cli

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL, mounts and fsync semantics are POSIX")

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
TRAIN = ["iris", "--hidden", "4", "--iterations", "600", "--batch-size", "1", "--eval-every", "50",
         "--checkpoint-every", "50", "--seed", "0", "-q"]


def small_net(seed=0):
    return lp.Network(lp.LayeredGraph.dense([3, 4, 2]), seed=seed)


def temp_files(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def weights(path) -> list:
    net = lpio.load(path)
    return [np.asarray(w) for w in net.W] + [np.asarray(b) for b in net.b if b is not None]


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(x, y)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_error_line(result, needle=""):
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# -- SIGKILL during a model write ---------------------------------------------------------------

# The child stalls inside atomic_write after writing the data (in its fsync), signals READY, and
# is killed there: the worst moment, a complete temporary file that was never renamed.
STALL_FSYNC = textwrap.dedent("""
    import os, sys, time, pathlib
    ready = pathlib.Path(sys.argv[1])
    def stalled_fsync(fd):
        ready.touch()
        time.sleep(600)
    os.fsync = stalled_fsync
""")
CHILD_SAVE = STALL_FSYNC + textwrap.dedent("""
    import layerprop as lp
    from layerprop import io
    net = lp.Network(lp.LayeredGraph.dense([3, 4, 2]), seed=1)
    io.save(net, sys.argv[2])
""")
CHILD_CLI = STALL_FSYNC + textwrap.dedent("""
    from layerprop.cli import main
    main(["train", "xor", "--hidden", "3", "--iterations", "50", "-q", "-o", sys.argv[2]])
""")


@pytest.mark.parametrize("writer", ["io_save", "cli_train_o"])
def test_sigkill_during_model_write(tmp_path, writer):
    path = tmp_path / "model.safetensors"
    lpio.save(small_net(0), path)
    before = path.read_bytes()
    ready = tmp_path / "READY"
    code = CHILD_SAVE if writer == "io_save" else CHILD_CLI
    proc = subprocess.Popen([sys.executable, "-c", code, str(ready), str(path)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(ready.exists, proc), proc.communicate()[1].decode()[-2000:]
    finally:
        kill(proc)
    assert path.read_bytes() == before
    lpio.load(path)
    leftover = temp_files(tmp_path)
    assert len(leftover) == 1 and f".{proc.pid}." in leftover[0]
    # the next write of the same file removes the leftover
    if writer == "io_save":
        lpio.save(small_net(2), path)
    else:
        assert run("train", "xor", "--hidden", "3", "--iterations", "50", "-q", "-o", path).exit_code == 0
    assert temp_files(tmp_path) == []
    lpio.load(path)


# -- SIGKILL during training and during a checkpoint write (the CLI), then --resume ---------------

CHILD_TRAIN = textwrap.dedent("""
    import os, sys, time, pathlib
    import layerprop.io as lio
    folder, mode, out = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    original, calls = lio.atomic_write, []
    def patched(path, data):
        if not pathlib.Path(path).name.startswith("checkpoint"):
            return original(path, data)
        calls.append(path)
        if len(calls) < 3:
            return original(path, data)
        if mode == "training":  # the 2nd checkpoint is complete; stall in the training loop
            (folder / "READY").touch()
            time.sleep(600)
        def half(f):
            f.write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())
            (folder / "READY").touch()
            time.sleep(600)
        return original(path, half)
    lio.atomic_write = patched
    from layerprop.cli import main
    main(["train", *sys.argv[4:], "--checkpoint", str(folder), "-o", out])
""")


@pytest.mark.parametrize("mode", ["training", "checkpoint_write"])
def test_sigkill_then_resume_gives_the_uninterrupted_model(tmp_path, mode):
    ck, out = tmp_path / "ck", tmp_path / "out"
    ck.mkdir()
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", CHILD_TRAIN, str(ck), mode, str(out / "killed.safetensors"),
                             *TRAIN], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for((ck / "READY").exists, proc), proc.communicate()[1].decode()[-2000:]
    finally:
        kill(proc)
    (ck / "READY").unlink()
    assert list(out.iterdir()) == []  # no model was written by the killed run
    checkpoint = ck / "checkpoint.safetensors"
    _, _, info = lpio.load_checkpoint(checkpoint)  # the last complete checkpoint, intact
    assert info["iteration"] == 100
    assert len(temp_files(ck)) == (1 if mode == "checkpoint_write" else 0)

    resumed = run("train", *TRAIN, "--checkpoint", ck, "--resume", "-o", out / "resumed.safetensors")
    assert resumed.exit_code == 0, resumed.stderr
    assert temp_files(ck) == []
    whole = run("train", *TRAIN, "-o", out / "whole.safetensors")
    assert whole.exit_code == 0, whole.stderr
    assert_same_weights(out / "whole.safetensors", out / "resumed.safetensors")


# -- a full disk ----------------------------------------------------------------------------------

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullDiskFile:
    """A file object whose write fails with ENOSPC after the first 100 bytes."""

    def __init__(self, f):
        self._f, self._n = f, 0

    def write(self, data):
        self._n += len(data)
        if self._n > 100:
            self._f.write(bytes(data)[:10])
            _enospc()
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def full_disk(monkeypatch, where):
    if where == "fsync":
        monkeypatch.setattr(os, "fsync", _enospc)
    else:
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FullDiskFile(real_fdopen(*a, **k)))


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_io_save(tmp_path, monkeypatch, where):
    path = lpio.save(small_net(0), tmp_path / "m.safetensors")
    before = path.read_bytes()
    full_disk(monkeypatch, where)
    with pytest.raises(OSError) as e:
        lpio.save(small_net(1), path)
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before and temp_files(tmp_path) == []
    lpio.load(path)


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_cli_output(tmp_path, monkeypatch, where):
    path = tmp_path / "m.safetensors"
    assert run("train", "xor", "--hidden", "3", "--iterations", "50", "-q", "-o", path).exit_code == 0
    before = path.read_bytes()
    full_disk(monkeypatch, where)
    result = run("train", "xor", "--hidden", "3", "--iterations", "60", "-q", "-o", path)
    monkeypatch.undo()
    assert_one_error_line(result, "No space left")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_checkpoint_write(tmp_path, monkeypatch, where):
    """A failed checkpoint write stops training with the error; the previous checkpoint stays."""
    X = np.random.default_rng(0).normal(size=(20, 3))
    Y = np.eye(2)[(X[:, 0] > 0).astype(int)]
    lp.sgd(small_net(), X, Y, iterations=20, checkpoint=tmp_path, checkpoint_every=10, progress=False)
    ck = tmp_path / "checkpoint.safetensors"
    before = ck.read_bytes()
    full_disk(monkeypatch, where)
    with pytest.raises(OSError):
        lp.sgd(small_net(), X, Y, iterations=40, checkpoint=tmp_path, checkpoint_every=10, resume=True,
               progress=False)
    monkeypatch.undo()
    assert ck.read_bytes() == before and temp_files(tmp_path) == []
    resumed = lp.sgd(small_net(), X, Y, iterations=40, checkpoint=tmp_path, checkpoint_every=10, resume=True,
                     progress=False)
    # the uninterrupted run with the same checkpoints (the compiled batch-1 loop's blocks start at
    # each checkpoint, so checkpoint_every is part of the run's round-off: docs/training.md)
    whole = lp.sgd(small_net(), X, Y, iterations=40, checkpoint=tmp_path / "whole", checkpoint_every=10,
                   progress=False)
    for a, b in zip(resumed.network.W, whole.network.W):
        np.testing.assert_array_equal(a, b)


# -- a read-only output folder --------------------------------------------------------------------

@pytest.fixture
def read_only_folder(tmp_path):
    """A folder holding a model, bind-mounted read-only (read-only for root too)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    lpio.save(small_net(0), src / "m.safetensors")
    mounted = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True).returncode == 0
    if mounted:
        mounted = subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True).returncode == 0
        if not mounted:
            subprocess.run(["umount", str(ro)], capture_output=True)
    if not mounted:
        pytest.skip("cannot bind-mount read-only here (needs CAP_SYS_ADMIN)")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_read_only_mount_io_save(read_only_folder):
    path = read_only_folder / "m.safetensors"
    before = path.read_bytes()
    with pytest.raises(OSError) as e:
        lpio.save(small_net(1), path)
    assert e.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    assert path.read_bytes() == before and temp_files(read_only_folder) == []
    lpio.load(path)


@pytest.mark.parametrize("command", ["train", "predict"])
def test_read_only_mount_cli_output(read_only_folder, tmp_path, command):
    before = {p.name: p.read_bytes() for p in read_only_folder.iterdir()}
    if command == "train":
        result = run("train", "xor", "--hidden", "3", "--iterations", "20", "-q", "-o", read_only_folder / "m.safetensors")
    else:
        data = tmp_path / "x.csv"
        data.write_text("a,b,c\n1,2,3\n")
        result = run("predict", read_only_folder / "m.safetensors", data, "-o", read_only_folder / "p.csv")
    assert_one_error_line(result)
    assert {p.name: p.read_bytes() for p in read_only_folder.iterdir()} == before


def _deny_create(monkeypatch):
    real_open = os.open

    def deny(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", deny)


def test_read_only_simulated_cli_output(tmp_path, monkeypatch):
    """Where os.access says writable but creating the file fails (root on a read-only file
    system that os.access does not see, a network share...): still one Error line."""
    path = tmp_path / "m.safetensors"
    assert run("train", "xor", "--hidden", "3", "--iterations", "20", "-q", "-o", path).exit_code == 0
    before = path.read_bytes()
    _deny_create(monkeypatch)
    result = run("train", "xor", "--hidden", "3", "--iterations", "30", "-q", "-o", path)
    monkeypatch.undo()
    assert_one_error_line(result, "Read-only file system")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_chmod_does_not_stop_root_but_os_access_semantics_are_consistent(tmp_path):
    """Documents why the tests above do not use chmod: for root, os.access and a real write agree."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        writable = os.access(folder, os.W_OK)
        try:
            lpio.save(small_net(), folder / "m.safetensors")
            wrote = True
        except PermissionError:
            wrote = False
        assert writable == wrote
    finally:
        folder.chmod(0o700)
