"""Atheris harness for layerprop's model-file reader.

The property: for any bytes, ``layerprop.io.load`` (and ``read_info``, ``load_checkpoint``)
returns a valid Network or raises ``ModelFileError``, nothing else, within a time bound.

    pip install -e ".[fuzz]"
    python fuzz/fuzz_load.py -runs=100000              # starts from a valid model and checkpoint
    python fuzz/fuzz_load.py CORPUS_DIR -max_total_time=600

Without a corpus folder on the command line, a temporary one is seeded with a small valid
model file and a checkpoint. ``tests/test_io_fuzz.py`` runs the same ``check_bytes`` under
hypothesis, so this file imports without atheris.
"""

import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

if __name__ == "__main__":  # coverage feedback from layerprop's code only
    import atheris  # the "fuzz" extra

    with atheris.instrument_imports(include=["layerprop"]):
        import layerprop as lp
        from layerprop import io as lpio
else:
    import layerprop as lp
    from layerprop import io as lpio

TIME_BOUND_S = 2.0
_WORKDIR = Path(tempfile.mkdtemp(prefix="layerprop-fuzz-"))


def seed_files(folder: Path) -> list:
    """A small sparse model file and a checkpoint, valid, as starting points for mutation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        net = lp.Network(lp.LayeredGraph.random([3, 4, 2], 0.6, seed=0), activation="tanh",
                         output_activation="sigmoid", seed=0)
    net.info = {"classes": ["no", "yes"], "input_scaling": {"mean": [0, 1, 2], "scale": [1, 1, 1]}}
    state = {"m.W.0": np.ones((4, 3)), "rng": np.arange(4, dtype=np.uint64)}
    return [lpio.save(net, folder / "model.safetensors"),
            lpio.save_checkpoint(folder / "checkpoint.safetensors", net, state, {"iteration": 9})]


def check_bytes(data: bytes) -> list:
    """Assert the property for one file content; return what each reader did ("read"/"refused")."""
    path = _WORKDIR / "case.safetensors"
    path.write_bytes(data)
    outcomes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a mutated mask may cut off a neuron
        for reader in (lpio.load, lpio.read_info, lpio.load_checkpoint):
            start = time.perf_counter()
            try:
                out = reader(path)
            except lpio.ModelFileError:
                out = None
            elapsed = time.perf_counter() - start
            assert elapsed < TIME_BOUND_S, f"{reader.__name__} took {elapsed:.2f} s"
            if out is not None:
                assert_valid(out[0] if isinstance(out, tuple) else out)
            outcomes.append(f"{reader.__name__}: {'refused' if out is None else 'read'}")
    return outcomes


def assert_valid(out) -> None:
    """A read_info dict names the format; a Network has chained shapes, finite weights, zero phantoms."""
    if isinstance(out, dict):
        assert out["format"] == lpio.FORMAT and out["version"] == lpio.FORMAT_VERSION
        return
    assert isinstance(out, lp.Network), type(out)
    for t in range(out.T):
        W, mask = np.asarray(out.W[t]), np.asarray(out.masks[t])
        assert W.shape == (out.k[t + 1], out.k[t]) and mask.dtype == bool
        assert np.isfinite(W).all() and (W[~mask] == 0).all()
        if out.bias_masks is not None:
            b, bmask = np.asarray(out.b[t]), np.asarray(out.bias_masks[t])
            assert b.shape == (out.k[t + 1],) and np.isfinite(b).all() and (b[~bmask] == 0).all()


def main(argv) -> None:
    from _harness import fuzz  # fuzz/, on sys.path when this file runs as a script

    fuzz(argv, check_bytes, seed_files, prefix="layerprop-corpus-")


if __name__ == "__main__":
    main(sys.argv)
