"""Robustness (issue 8): bad input files through the ``layerprop`` command.

Each bad file gives exactly one ``Error:`` line on stderr, exit status 1, no traceback, and
leaves the output folder exactly as it was (a previous model or prediction file byte for
byte, and no new or temporary file). Valid variants of a file (UTF-8 BOM, CRLF, quoted fields
with newlines, ``;`` with decimal commas, TSV) train to bitwise the same weights as their
plain twin with a fixed seed.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from layerprop import io as lpio
from layerprop.cli import cli

RNG = np.random.default_rng(0)
X = np.round(RNG.normal(size=(40, 2)), 3)
LABELS = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
FAST = ["--hidden", "3", "--epochs", "2", "--seed", "0", "-q"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_error_line(result):
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def rows_text(sep=",", rows=None, header=("a", "b", "label"), newline="\n"):
    rows = [[*map(str, x), l] for x, l in zip(X, LABELS)] if rows is None else rows
    return newline.join([sep.join(header), *(sep.join(map(str, r)) for r in rows)]) + newline


def _cell(value, row=5, col=0):
    rows = [[*map(str, x), l] for x, l in zip(X, LABELS)]
    rows[row][col] = value
    return rows_text(rows=rows)


def _npz(path, **arrays):
    np.savez(path, **arrays)


BAD_TEXT = {
    "nan_cell.csv": _cell("nan"),
    "NaN_cell.csv": _cell("NaN"),
    "inf_cell.csv": _cell("inf"),
    "minus_inf_cell.csv": _cell("-Infinity"),
    "overflow_1e999.csv": _cell("1e999"),
    "complex_cell.csv": _cell("1+2j"),
    "string_cell.csv": _cell("forty"),
    "dict_cell.csv": _cell('"{\'a\': 1}"'),
    "empty_cell.csv": _cell(""),
    "hex_cell.csv": _cell("0x10"),
    "nan_in_y.csv": _cell("nan", col=2).replace(",nan\n", ",NaN\n"),
    "empty_y.csv": _cell("", col=2),
    "ragged_short.csv": rows_text() + "1.0,yes\n",
    "ragged_long.csv": rows_text() + "1.0,2.0,3.0,yes\n",
    "trailing_delimiter.csv": rows_text().replace("\n", ",\n", 3),
    "unclosed_quote.csv": rows_text() + '"1.0,2.0,yes\n',
    "empty.csv": "",
    "blank_lines_only.csv": "\n\n\n",
    "header_only.csv": "a,b,label\n",
    "duplicate_header.csv": rows_text(header=("a", "a", "label")),
    "empty_header_name.csv": rows_text(header=("", "b", "label")),
    "one_column.csv": "label\n" + "".join(f"{l}\n" for l in LABELS),
    "one_row.csv": rows_text(rows=[[1.0, 2.0, "yes"]]),
    "single_class.csv": rows_text(rows=[[*map(str, x), "same"] for x in X]),
    "semicolon_ambiguous.csv": rows_text(sep=";").replace(str(X[0, 0]), str(X[0, 0]).replace(".", ","), 1),
    "semicolon_thousands.csv": rows_text(sep=";").replace(str(X[0, 0]), "1.234,5", 1),
}
BAD_BYTES = {
    "non_utf8.csv": rows_text().encode().replace(b"yes", b"y\xe9s", 1),
    "utf16.csv": rows_text().encode("utf-16"),
    "nul_byte.csv": rows_text().encode().replace(b"yes", b"y\x00s", 1),
    "gzip_bomb.csv": gzip.compress(b"a,b,label\n" + b"1,2,x\n" * 2_000_000, compresslevel=9),
    "gzip_bomb.csv.gz": gzip.compress(b"a,b,label\n" + b"1,2,x\n" * 2_000_000, compresslevel=9),
    "random_bytes.csv": np.random.default_rng(1).bytes(2000),
}


def _zip_renamed(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.csv", "a,b,label\n" + "1,2,x\n" * 100_000)


BAD_OTHER = {
    "zip_renamed.csv": _zip_renamed,
    "pickle_in_X.npz": lambda p: _npz(p, X=np.array([{"a": 1}] * 4, dtype=object), y=np.array([0, 1, 0, 1])),
    "pickle_in_y.npz": lambda p: _npz(p, X=np.ones((4, 2)), y=np.array([{}, {}, 1, 2], dtype=object)),
    "pickle_file.npz": lambda p: p.write_bytes(__import__("pickle").dumps({"X": np.ones((3, 2))})),
    "npz_1d_X.npz": lambda p: _npz(p, X=np.ones(4), y=np.array([0, 1, 0, 1])),
    "npz_0_rows.npz": lambda p: _npz(p, X=np.ones((0, 2)), y=np.array([], dtype=int)),
    "npz_0_columns.npz": lambda p: _npz(p, X=np.ones((4, 0)), y=np.array([0, 1, 0, 1])),
    "npz_nan.npz": lambda p: _npz(p, X=np.array([[np.nan, 1.0]] * 4), y=np.array([0, 1, 0, 1])),
    "npz_complex.npz": lambda p: _npz(p, X=np.ones((4, 2)) + 1j, y=np.array([0, 1, 0, 1])),
    "npz_mismatched_lengths.npz": lambda p: _npz(p, X=np.ones((4, 2)), y=np.array([0, 1, 0])),
    "npz_nan_y.npz": lambda p: _npz(p, X=RNG.normal(size=(4, 2)), y=np.array([0.5, np.nan, 1.5, 2.5])),
    "npz_no_y.npz": lambda p: _npz(p, X=np.ones((4, 2))),
    "missing_file.csv": lambda p: None,
    "a_folder.csv": lambda p: p.mkdir(),
}
OVER_LONG_FIRST_ROW = "over_long_first_row.csv"
BAD_FILES = [*BAD_TEXT, *BAD_BYTES, *BAD_OTHER, OVER_LONG_FIRST_ROW]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    for name, text in BAD_TEXT.items():
        (d / name).write_text(text)
    for name, raw in BAD_BYTES.items():
        (d / name).write_bytes(raw)
    for name, make in BAD_OTHER.items():
        make(d / name)
    (d / OVER_LONG_FIRST_ROW).write_text("a" * (10 * 2**20 + 10) + ",label\n1,x\n2,y\n")
    (d / "good.csv").write_text(rows_text())
    (d / "huge_column.csv").write_text(rows_text(rows=[[1e308 if i % 2 else -1e308, x[1], l] for i, (x, l)
                                                       in enumerate(zip(X, LABELS))]))
    return d


@pytest.fixture(scope="module")
def model_bytes(data_dir):
    out = data_dir / "model.safetensors"
    result = run("train", data_dir / "good.csv", *FAST, "-o", out)
    assert result.exit_code == 0, result.stderr
    return out.read_bytes()


@pytest.fixture
def out_dir(tmp_path, model_bytes):
    """An output folder that already holds a model and a prediction file."""
    d = tmp_path / "out"
    d.mkdir()
    (d / "model.safetensors").write_bytes(model_bytes)
    (d / "pred.csv").write_text("label\nyes\n")
    return d


@pytest.mark.parametrize("name", BAD_FILES)
def test_train_bad_file(data_dir, out_dir, name):
    before = snapshot(out_dir)
    assert_one_error_line(run("train", data_dir / name, *FAST, "-o", out_dir / "model.safetensors"))
    assert snapshot(out_dir) == before
    lpio.load(out_dir / "model.safetensors")  # the previous model still loads


def test_train_huge_but_finite_column(data_dir, out_dir):
    """1e308 is a finite number the reader keeps: training works (standardization used to overflow)."""
    before = snapshot(out_dir)
    result = run("train", data_dir / "huge_column.csv", *FAST, "-o", out_dir / "m2.safetensors")
    if result.exit_code == 0:
        net = lpio.load(out_dir / "m2.safetensors")
        assert all(np.isfinite(w).all() for w in net.W)
        assert result.stderr == ""
    else:
        line = assert_one_error_line(result)
        assert "JSON" not in line
        assert snapshot(out_dir) == before


PREDICT_BAD = [*BAD_TEXT, *BAD_BYTES, *BAD_OTHER, "renamed_columns.csv", "transposed.csv"]
PREDICT_OK_ELSEWHERE = {"nan_in_y.csv", "empty_y.csv", "one_row.csv", "single_class.csv", "one_column.csv",
                        "npz_mismatched_lengths.npz", "npz_nan_y.npz", "npz_no_y.npz", "pickle_in_y.npz"}


@pytest.mark.parametrize("name", [n for n in PREDICT_BAD if n not in PREDICT_OK_ELSEWHERE])
def test_predict_bad_file(data_dir, out_dir, name):
    path = data_dir / name
    if name == "renamed_columns.csv":
        path.write_text(rows_text(header=("A", "b", "label")))
    elif name == "transposed.csv":
        path.write_text("\n".join(",".join(map(str, col)) for col in np.column_stack([X, LABELS]).T) + "\n")
    before = snapshot(out_dir)
    assert_one_error_line(run("predict", out_dir / "model.safetensors", path, "-o", out_dir / "pred.csv"))
    assert snapshot(out_dir) == before


def test_predict_reordered_columns_give_the_same_predictions(data_dir, out_dir):
    reordered = out_dir.parent / "reordered.csv"
    reordered.write_text(rows_text(rows=[[l, x[1], x[0]] for x, l in zip(X, LABELS)], header=("label", "b", "a")))
    model = out_dir / "model.safetensors"
    a = run("predict", model, data_dir / "good.csv", "--proba")
    b = run("predict", model, reordered, "--proba")
    assert a.exit_code == b.exit_code == 0 and a.stdout == b.stdout


# -- valid variants train as their plain twin ----------------------------------------------------

def _quoted_newlines():
    rows = [[*map(str, x), f'"{l}\nline 2"'] for x, l in zip(X, LABELS)]
    return rows_text(rows=rows)


def _plain_twin_of_quoted_newlines():
    return rows_text(rows=[[*map(str, x), f"{l} line 2"] for x, l in zip(X, LABELS)])


VALID = {
    "bom.csv": ("\ufeff" + rows_text(), rows_text()),
    "crlf.csv": (rows_text(newline="\r\n"), rows_text()),
    "bom_crlf.csv": ("\ufeff" + rows_text(newline="\r\n"), rows_text()),
    "quoted_newlines.csv": (_quoted_newlines(), _plain_twin_of_quoted_newlines()),
    "quoted_numbers.csv": (rows_text(rows=[[f'"{x[0]}"', x[1], l] for x, l in zip(X, LABELS)]), rows_text()),
    "semicolon_decimal_comma.csv": (rows_text(sep=";", rows=[[str(v).replace(".", ",") for v in x] + [l]
                                                           for x, l in zip(X, LABELS)]), rows_text()),
    "spaces_around_numbers.csv": (rows_text(rows=[[f" {x[0]} ", x[1], l] for x, l in zip(X, LABELS)]), rows_text()),
    "trailing_blank_lines.csv": (rows_text() + "\n\n", rows_text()),
    "tab.tsv": (rows_text(sep="\t"), rows_text()),
}


def _weights(path):
    net = lpio.load(path)
    return [np.asarray(w) for w in net.W] + [np.asarray(b) for b in net.b if b is not None]


@pytest.mark.parametrize("name", list(VALID))
def test_valid_variant_trains_as_its_plain_twin(tmp_path, name):
    text, twin = VALID[name]
    (tmp_path / name).write_bytes(text.encode())
    (tmp_path / "twin.csv").write_bytes(twin.encode())
    for src, out in ((name, "a.safetensors"), ("twin.csv", "b.safetensors")):
        result = run("train", tmp_path / src, *FAST, "-o", tmp_path / out)
        assert result.exit_code == 0, result.stderr
    for a, b in zip(_weights(tmp_path / "a.safetensors"), _weights(tmp_path / "b.safetensors")):
        np.testing.assert_array_equal(a, b)


def test_subprocess_bad_file_has_one_error_line(data_dir, out_dir):
    """The real process (not CliRunner): no traceback, no warning lines, exit 1."""
    before = snapshot(out_dir)
    proc = subprocess.run([sys.executable, "-m", "layerprop", "train", str(data_dir / "gzip_bomb.csv"),
                           "-o", str(out_dir / "model.safetensors")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "compressed" in lines[0], proc.stderr
    assert snapshot(out_dir) == before
