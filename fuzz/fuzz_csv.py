"""Atheris harness for layerprop's CSV/TSV/NPZ readers (``layerprop.data``).

The property: for any bytes, ``load_data`` and ``load_features`` return a finite, well-shaped
data set or raise ``DataError``, nothing else, within a time bound. The file is tried under
each suffix (.csv, .tsv, .npz), so the sniffing of magic bytes is fuzzed too.

    pip install atheris
    python fuzz/fuzz_csv.py -max_total_time=60          # starts from small valid files
    python fuzz/fuzz_csv.py CORPUS_DIR -runs=1000000
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__":  # coverage feedback from layerprop's code only
    import atheris

    with atheris.instrument_imports(include=["layerprop"]):
        from layerprop import data as lpdata
else:
    from layerprop import data as lpdata

TIME_BOUND_S = 2.0
_WORKDIR = Path(tempfile.mkdtemp(prefix="layerprop-fuzz-csv-"))
SUFFIXES = (".csv", ".tsv", ".npz")


def seed_files(folder: Path) -> list:
    """Small valid files as starting points: plain, BOM+CRLF, quoted newlines, ';' with decimal commas."""
    files = {
        "plain.csv": b"a,b,label\n1,2.5,x\n-3,4e-3,y\n5,6,x\n",
        "bom_crlf.csv": b"\xef\xbb\xbfa,b,label\r\n1,2,x\r\n3,4,y\r\n",
        "quoted.csv": b'a,b,label\n1,2,"x\ny"\n3,"4",z\n',
        "semicolon.csv": b"a;b;label\n1,5;2;x\n3;4,25;y\n",
        "tab.tsv": b"a\tb\ty\n1\t2\t0.5\n3\t4\t1.5\n",
    }
    out = []
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
        out.append(folder / name)
    np.savez(folder / "small.npz", X=np.arange(6.0).reshape(3, 2), y=np.array([0, 1, 0]))
    out.append(folder / "small.npz")
    return out


def check_bytes(raw: bytes) -> list:
    """Assert the property for one file content under every suffix; return the outcomes."""
    outcomes = []
    for suffix in SUFFIXES:
        path = _WORKDIR / f"case{suffix}"
        path.write_bytes(raw)
        for reader in ("load_data", "load_features"):
            start = time.perf_counter()
            try:
                if reader == "load_data":
                    ds = lpdata.load_data(path, max_bytes=1_000_000)
                    X = ds.X
                    if ds.y is not None:
                        assert len(ds.y) == X.shape[0]
                else:
                    X, names = lpdata.load_features(path, max_bytes=1_000_000)
                    assert len(names) == X.shape[1]
                assert X.ndim == 2 and X.shape[0] >= 1 and X.shape[1] >= 1, X.shape
                assert np.isfinite(X).all()
                outcomes.append(f"{suffix} {reader}: read")
            except lpdata.DataError:
                outcomes.append(f"{suffix} {reader}: refused")
            elapsed = time.perf_counter() - start
            assert elapsed < TIME_BOUND_S, f"{reader}{suffix} took {elapsed:.2f} s"
    return outcomes


def main(argv) -> None:
    from _harness import fuzz  # fuzz/, on sys.path when this file runs as a script

    fuzz(argv, check_bytes, seed_files, prefix="layerprop-csv-corpus-")


if __name__ == "__main__":
    main(sys.argv)
