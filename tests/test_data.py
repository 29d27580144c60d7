"""Tests of layerprop.data: strict file readers and bundled data sets."""

import bz2
import doctest
import gzip
import lzma
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import layerprop.data as data
from layerprop.data import (
    DATASETS,
    DataError,
    check_classification_target,
    list_datasets,
    load_data,
    load_dataset,
    load_features,
    make_toy_2d,
    train_test_split_indices,
)


def write(tmp_path, name, content) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def assert_same_dataset(got, want):
    np.testing.assert_array_equal(got.X, want.X)
    assert got.X.dtype == np.float64
    np.testing.assert_array_equal(got.y, want.y)
    assert got.y.dtype.kind == want.y.dtype.kind
    assert (got.feature_names, got.target_name) == (want.feature_names, want.target_name)
    assert (got.task, got.classes) == (want.task, want.classes)


# ---------------------------------------------------------------------------------------
# CSV: valid variants give the same arrays as the plain file
# ---------------------------------------------------------------------------------------

PLAIN = "a,b,label\n1.5,-2,cat\n3e2,0.25,dog\n7,8,cat\n"
PLAIN_X = np.array([[1.5, -2.0], [300.0, 0.25], [7.0, 8.0]])

VARIANTS = {
    "bom": ("x.csv", b"\xef\xbb\xbf" + PLAIN.encode()),
    "crlf": ("x.csv", PLAIN.replace("\n", "\r\n")),
    "bom_crlf": ("x.csv", b"\xef\xbb\xbf" + PLAIN.replace("\n", "\r\n").encode()),
    "quoted": ("x.csv", '"a","b","label"\n"1.5","-2","cat"\n"3e2","0.25","dog"\n"7","8","cat"\n'),
    "quoted_newlines": (
        "x.csv",
        '"a\n",b,"label"\n"1.5\n",-2,"cat\n"\n3e2,"\n0.25",dog\n7,8,"\ncat"\n',
    ),
    "quoted_newlines_crlf": (
        "x.csv",
        '"a\r\n",b,"label"\r\n"1.5\r\n",-2,"cat\r\n"\r\n3e2,"\r\n0.25",dog\r\n7,8,cat\r\n',
    ),
    "spaces": ("x.csv", " a , b ,label \n 1.5, -2 , cat\n3e2 ,0.25,dog \n7,8,cat\n"),
    "no_final_newline": ("x.csv", PLAIN.rstrip("\n")),
    "trailing_blank_lines": ("x.csv", PLAIN + "\n\n"),
    "tsv": ("x.tsv", PLAIN.replace(",", "\t")),
    "txt": ("x.txt", PLAIN),
    "tab_sniffed_in_csv": ("x.csv", PLAIN.replace(",", "\t")),
    "semicolon_decimal_comma": ("x.csv", "a;b;label\n1,5;-2;cat\n3e2;0,25;dog\n7;8;cat\n"),
    "semicolon_decimal_point": ("x.csv", "a;b;label\n1.5;-2;cat\n3e2;0.25;dog\n7;8;cat\n"),
    "semicolon_bom_crlf": (
        "x.csv",
        b"\xef\xbb\xbfa;b;label\r\n1,5;-2;cat\r\n3e2;0,25;dog\r\n7;8;cat\r\n",
    ),
    "exponent_forms": ("x.csv", "a,b,label\n+1.50,-2.,cat\n3.0E+2,.25,dog\n7,8e0,cat\n"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_valid_variant_equals_plain_twin(tmp_path, variant):
    name, content = VARIANTS[variant]
    want = load_data(write(tmp_path, "plain.csv", PLAIN))
    got = load_data(write(tmp_path, name, content))
    assert_same_dataset(got, want)
    np.testing.assert_array_equal(got.X, PLAIN_X)
    assert got.name == name


def test_plain_twin_reads_as_expected(tmp_path):
    ds = load_data(write(tmp_path, "plain.csv", PLAIN))
    np.testing.assert_array_equal(ds.X, PLAIN_X)
    assert ds.y.tolist() == ["cat", "dog", "cat"]
    assert ds.feature_names == ["a", "b"] and ds.target_name == "label"
    assert ds.task == "classification" and ds.classes == ["cat", "dog"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_quoted_label_keeps_its_newline_the_same_for_crlf(tmp_path, newline):
    text = f'a,label{newline}1,"big{newline}cat"{newline}2,dog{newline}'
    ds = load_data(write(tmp_path, "x.csv", text))
    assert ds.y.tolist() == ["big\ncat", "dog"]


def test_values_near_float_limits_are_kept(tmp_path):
    text = "a,y\n1e308,1.5\n-1.7976931348623157e308,2.5\n5e-324,3\n"
    ds = load_data(write(tmp_path, "x.csv", text))
    assert ds.X[:, 0].tolist() == [1e308, -1.7976931348623157e308, 5e-324]
    assert ds.task == "regression"


# ---------------------------------------------------------------------------------------
# CSV: every bad case raises DataError naming the file and the detail
# ---------------------------------------------------------------------------------------

LONG = "x" * 1000

BAD_CSV = {
    "empty": (b"", {}, ["is empty"]),
    "only_blank_lines": ("\n\r\n\n", {}, ["is empty"]),
    "only_bom": (b"\xef\xbb\xbf", {}, ["is empty"]),
    "header_only": ("a,b,y\n", {}, ["has a header but no data rows"]),
    "header_only_blank_after": ("a,b,y\n\n", {}, ["has a header but no data rows"]),
    "too_few_fields": ("a,b,y\n1,2,0\n3,4\n", {}, ["line 3", "2 fields", "header has 3"]),
    "too_many_fields": ("a,b,y\n1,2,0,5\n", {}, ["line 2", "4 fields", "header has 3"]),
    "trailing_delimiter": ("a,b,y\n1,2,0,\n", {}, ["line 2", "4 fields"]),
    "unquoted_decimal_comma": ("a,b,y\n1,5,2,0\n", {}, ["line 2", "4 fields", "decimal comma"]),
    "duplicate_columns": ("a,a,y\n1,2,0\n", {}, ["duplicate column", "'a'"]),
    "duplicate_after_strip": ("a, a,y\n1,2,0\n", {}, ["duplicate column", "'a'"]),
    "empty_column_name": (",b,y\n0,2,0\n", {}, ["column 1 has an empty name"]),
    "non_numeric": ("a,b,y\n1,2,0\n1,abc,0\n", {}, ["line 3", "column 'b'", "'abc'"]),
    "long_value_truncated": (f"a,y\n{LONG},0\n", {}, ["line 2", "column 'a'", "'xxxx", "...'"]),
    "empty_cell": ("a,b,y\n1,,0\n", {}, ["line 2", "column 'b'", "empty cell"]),
    "blank_cell": ("a,b,y\n1,  ,0\n", {}, ["line 2", "column 'b'", "empty cell"]),
    "nan_cell": ("a,b,y\n1,nan,0\n", {}, ["line 2", "column 'b'", "NaN"]),
    "NaN_cell": ("a,b,y\n1,NaN,0\n", {}, ["line 2", "column 'b'", "NaN"]),
    "inf_cell": ("a,b,y\n1,inf,0\n", {}, ["line 2", "column 'b'", "infinite"]),
    "minus_inf_cell": ("a,b,y\n-inf,1,0\n", {}, ["line 2", "column 'a'", "infinite"]),
    "infinity_cell": ("a,b,y\n1,Infinity,0\n", {}, ["line 2", "column 'b'", "infinite"]),
    "overflow": ("a,b,y\n1,1e999,0\n", {}, ["line 2", "column 'b'", "'1e999'", "overflows"]),
    "complex": ("a,b,y\n1,1+2j,0\n", {}, ["line 2", "column 'b'", "complex", "'1+2j'"]),
    "underscore_number": ("a,b,y\n1,1_000,0\n", {}, ["line 2", "column 'b'", "'1_000'"]),
    "non_ascii_digits": ("a,b,y\n1,\u0661\u0662,0\n", {}, ["line 2", "column 'b'", "not a number"]),
    "hex_number": ("a,b,y\n1,0x10,0\n", {}, ["line 2", "column 'b'", "'0x10'"]),
    "bool_text_feature": ("a,b,y\n1,true,0\n", {}, ["line 2", "column 'b'", "'true'"]),
    "empty_target": ("a,y\n1,cat\n2,\n", {}, ["line 3", "column 'y'", "empty target"]),
    "nan_target": ("a,y\n1,2.5\n2,nan\n", {}, ["line 3", "column 'y'", "NaN"]),
    "inf_target": ("a,y\n1,2.5\n2,-inf\n", {}, ["line 3", "column 'y'", "infinite"]),
    "mixed_target": ("a,y\n1,2.5\n2,NA\n", {}, ["line 3", "'y'", "'NA'", "task='classification'"]),
    "regression_on_labels": ("a,y\n1,cat\n2,dog\n", {"task": "regression"}, ["line 2", "'cat'"]),
    "target_name_missing": (
        "a,b,y\n1,2,0\n",
        {"target": "nope"},
        ["'nope'", "not found", "'a'", "'y'"],
    ),
    "target_index_out_of_range": ("a,b,y\n1,2,0\n", {"target": 5}, ["index 5", "3 columns"]),
    "only_target": ("y\n1\n2\n", {}, ["no feature columns", "'y'"]),
    "single_class": ("a,y\n1,cat\n2,cat\n", {}, ["at least 2 classes", "only 'cat'"]),
    "single_class_forced": (
        "a,y\n1,2.5\n2,2.5\n",
        {"task": "classification"},
        ["at least 2", "2.5"],
    ),
    "invalid_utf8": (b"a,y\n1,0\n1,\xff\n", {}, ["UTF-8", "0xff", "offset 10", "line 3"]),
    "latin1_header": (b"caf\xe9,y\n1,0\n", {}, ["UTF-8", "offset 3", "line 1"]),
    "utf16": ("a,y\n1,0\n".encode("utf-16"), {}, ["UTF-16"]),
    "nul_byte": (b"a,y\n1,\x000\n", {}, ["NUL byte", "offset 6", "line 2"]),
    "unclosed_quote": ('a,y\n1,0\n1,"cat\n2,dog\n', {}, ["line 3", "unclosed quote"]),
    "text_after_quote": ('a,y\n1,"ca"t\n', {}, ["line 2", "malformed CSV"]),
    "blank_line_in_middle": ("a,y\n1,0\n\n2,1\n", {}, ["line 3 is blank"]),
    "leading_blank_line": ("\na,y\n1,0\n", {}, ["line 1 is blank"]),
    "mixed_decimal_separators": (
        "a;b;y\n1,5;2;0\n3;2.5;1\n",
        {},
        ["mixes decimal commas", "line 2", "'a'", "'1,5'", "line 3", "'b'", "'2.5'"],
    ),
    "mixed_separators_in_target": (
        "a;y\n1,5;0.5\n3;2.5\n",
        {},
        ["mixes decimal commas", "'1,5'", "'0.5'"],
    ),
    "thousands_separator": (
        "a;b;y\n1.234,5;2;0\n",
        {},
        ["line 2", "'a'", "ambiguous", "'1.234,5'"],
    ),
    "two_commas": ("a;b;y\n1,234,5;2;0\n", {}, ["line 2", "'a'", "ambiguous"]),
    "index_column_unnamed": (",a,y\n0,1,0\n1,2,1\n", {}, ["empty name", "index"]),
    "parquet_bytes_named_csv": (b"PAR1\x00\x00", {}, ["Parquet"]),
    "bare_cr_line_ends": ("a,y\r1,0\r2,1\r", {}, ["malformed CSV", "bare CR"]),
    "field_over_csv_limit": ('a,y\n1,"' + "x" * 200_000 + '"\n', {}, ["line 2", "field limit"]),
    "constant_int_target": ("a,y\n1,3\n2,3\n", {}, ["only 3", "task='regression'"]),
}


def assert_data_error(path, kwargs, details):
    """load_data(path) raises DataError naming the file and every detail."""
    with pytest.raises(DataError) as err:
        load_data(path, **kwargs)
    message = str(err.value)
    assert path.name in message
    for detail in details:
        assert detail in message, f"{detail!r} not in {message!r}"


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_bad_csv_raises_data_error_naming_file_and_detail(tmp_path, case):
    content, kwargs, details = BAD_CSV[case]
    assert_data_error(write(tmp_path, f"bad_{case}.csv", content), kwargs, details)


def test_long_value_is_truncated_in_message(tmp_path):
    path = write(tmp_path, "x.csv", f"a,y\n{LONG},0\n")
    with pytest.raises(DataError) as err:
        load_data(path)
    assert len(str(err.value)) < 300


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize("shape", ["one_line", "quoted_multiline_record"])
def test_over_long_row_is_refused(tmp_path, monkeypatch, shape):
    monkeypatch.setattr(data, "MAX_LINE_BYTES", 1000)
    if shape == "one_line":
        content = "a,y\n" + "1" * 5000 + ",0\n"
    else:
        content = 'a,y\n1,"' + "x\n" * 2000 + '"\n'
    path = write(tmp_path, "long.csv", content)
    with pytest.raises(DataError, match=r"long\.csv: line \d+: a row is longer than 1000 bytes"):
        load_data(path)


def test_over_long_line_of_real_limit_is_refused(tmp_path):
    path = tmp_path / "huge_line.csv"
    path.write_bytes(b"a,y\n" + b"1" * (data.MAX_LINE_BYTES + 10) + b",0\n")
    with pytest.raises(DataError, match="huge_line.csv: line 2: a row is longer"):
        load_data(path)


@pytest.mark.parametrize("where", ["header", "data_row"])
def test_too_many_columns_is_refused(tmp_path, where):
    wide = ",".join(["1"] * (data.MAX_COLUMNS + 1))
    names = ",".join(f"c{j}" for j in range(3))
    content = f"{wide}\n" if where == "header" else f"{names}\n1,2,3\n{wide}\n"
    path = write(tmp_path, f"wide_{where}.csv", content)
    with pytest.raises(DataError) as err:
        load_data(path)
    assert path.name in str(err.value) and str(data.MAX_COLUMNS) in str(err.value)


def test_file_over_max_bytes_is_refused(tmp_path):
    path = write(tmp_path, "big.csv", PLAIN)
    with pytest.raises(DataError, match=r"big\.csv: is \d+ bytes, over the limit of 10 bytes"):
        load_data(path, max_bytes=10)


# ---------------------------------------------------------------------------------------
# Compressed input, missing files, unsupported types
# ---------------------------------------------------------------------------------------

COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz", "data.tsv", "data.parquet"])
@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_compressed_input_is_refused(tmp_path, kind, name):
    path = write(tmp_path, name, COMPRESSORS[kind](PLAIN.encode()))
    with pytest.raises(DataError) as err:
        load_data(path)
    message = str(err.value)
    assert path.name in message
    if not name.endswith(".parquet"):
        assert "compressed files are not supported" in message and "decompress first" in message


def test_zip_archive_named_csv_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data.csv", PLAIN)
    with pytest.raises(DataError, match="data.csv: compressed files are not supported"):
        load_data(path)


@pytest.mark.parametrize("name", ["bomb.csv", "bomb.csv.gz"])
def test_gzip_bomb_is_refused_quickly_without_decompressing(tmp_path, name):
    # 256 MB of CSV compress to about 250 kB; reading it must not inflate it.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    chunk = b"1,2,3\n" * (1 << 20)
    parts = [compressor.compress(b"a,b,c\n")]
    parts += [compressor.compress(chunk) for _ in range(40)]
    path = tmp_path / name
    path.write_bytes(b"".join(parts) + compressor.flush())
    assert path.stat().st_size < 2_000_000
    start = time.perf_counter()
    with pytest.raises(DataError, match="compressed files are not supported"):
        load_data(path)
    with pytest.raises(DataError, match="compressed files are not supported"):
        load_features(path)
    assert time.perf_counter() - start < 1.0


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=f"file not found: {path}"):
        load_data(path)
    with pytest.raises(DataError, match="file not found"):
        load_features(str(path))


def test_unknown_bare_name_mentions_bundled_sets():
    with pytest.raises(DataError, match=r"file not found: no_such_set .*iris"):
        load_data("no_such_set")


def test_directory_is_refused(tmp_path):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(DataError, match="folder.csv: is a directory"):
        load_data(folder)


def test_unsupported_suffix(tmp_path):
    path = write(tmp_path, "x.xlsx", b"whatever")
    with pytest.raises(DataError, match=r"x\.xlsx: unsupported file type '\.xlsx'"):
        load_data(path)


def test_bad_task_argument_is_value_error(tmp_path):
    with pytest.raises(ValueError, match="task must be"):
        load_data(write(tmp_path, "x.csv", PLAIN), task="clustering")


# ---------------------------------------------------------------------------------------
# Target column and task inference
# ---------------------------------------------------------------------------------------

TARGET_CSV = "a,y,b\n1,0,10\n2,1,20\n3,0,30\n"


@pytest.mark.parametrize(
    "target, features, y",
    [
        (None, ["a", "y"], [10.0, 20.0, 30.0]),
        ("y", ["a", "b"], [0, 1, 0]),
        (1, ["a", "b"], [0, 1, 0]),
        ("1", ["a", "b"], [0, 1, 0]),
        (-1, ["a", "y"], [10.0, 20.0, 30.0]),
        ("a", ["y", "b"], [1, 2, 3]),
    ],
    ids=["default_last", "by_name", "by_int_index", "by_str_index", "negative_index", "first"],
)
def test_target_selection(tmp_path, target, features, y):
    ds = load_data(write(tmp_path, "t.csv", TARGET_CSV), target=target)
    assert ds.feature_names == features
    assert ds.y.tolist() == y


def test_target_name_wins_over_index(tmp_path):
    path = write(tmp_path, "t.csv", "0,1,2\n5,6,7\n8,9,10\n")
    ds = load_data(path, target="0", task="regression")
    assert ds.target_name == "0" and ds.y.tolist() == [5.0, 8.0]


@pytest.mark.parametrize(
    "column, task, want_task, want_kind",
    [
        (["0", "1", "2", "1"], None, "classification", "i"),
        (["0.0", "1.0", "1.0", "0.0"], None, "classification", "i"),
        (["-1", "1", "1", "-1"], None, "classification", "i"),
        (["0.5", "1.5", "2", "3"], None, "regression", "f"),
        (["cat", "dog", "cat", "1"], "classification", "classification", "U"),
        (["0", "1", "2", "1"], "regression", "regression", "f"),
        (["0.5", "1.5", "0.5", "1.5"], "classification", "classification", "f"),
        (["yes", "no", "no", "yes"], None, "classification", "U"),
    ],
    ids=[
        "ints",
        "integer_valued_floats",
        "plus_minus_one",
        "floats",
        "mixed_forced_classification",
        "ints_forced_regression",
        "floats_forced_classification",
        "strings",
    ],
)
def test_task_inference_and_label_types(tmp_path, column, task, want_task, want_kind):
    text = "x,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(column))
    ds = load_data(write(tmp_path, "t.csv", text), task=task)
    assert ds.task == want_task
    assert ds.y.dtype.kind == want_kind
    if want_task == "regression":
        assert ds.classes is None and ds.y.dtype == np.float64
    else:
        assert ds.classes == sorted(set(ds.y.tolist()))


def test_many_distinct_integers_are_regression(tmp_path):
    text = "x,y\n" + "".join(f"{i},{i * 7}\n" for i in range(100))
    assert load_data(write(tmp_path, "t.csv", text)).task == "regression"


def test_up_to_20_distinct_integers_are_classification(tmp_path):
    text = "x,y\n" + "".join(f"{i},{i % 20}\n" for i in range(100))
    ds = load_data(write(tmp_path, "t.csv", text))
    assert ds.task == "classification" and ds.classes == list(range(20))


@pytest.mark.parametrize("classes", [[], ["a"], [3, 3]], ids=["none", "one", "repeated"])
def test_check_classification_target_refuses_fewer_than_2(classes):
    with pytest.raises(DataError, match="f.csv: classification needs at least 2 classes"):
        check_classification_target(classes, "f.csv")


def test_check_classification_target_returns_sorted_classes():
    assert check_classification_target(np.array([2, 0, 2, 1]), "x") == [0, 1, 2]


# ---------------------------------------------------------------------------------------
# NPZ
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y, task, classes",
    [
        (np.array([0, 1, 1]), "classification", [0, 1]),
        (np.array(["b", "a", "b"]), "classification", ["a", "b"]),
        (np.array([True, False, True]), "classification", [False, True]),
        (np.array([0.5, 1.25, -3.0]), "regression", None),
        (np.array([[0.5], [1.25], [-3.0]]), "regression", None),
    ],
    ids=["ints", "strings", "bools", "floats", "column_vector"],
)
def test_npz_round_trip(tmp_path, y, task, classes):
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    ds = load_data(path)
    np.testing.assert_array_equal(ds.X, X)
    assert ds.X.dtype == np.float64
    np.testing.assert_array_equal(ds.y, y.ravel())
    assert (ds.task, ds.classes, ds.name) == (task, classes, "d.npz")
    assert ds.feature_names == ["x0", "x1"]


def test_npz_with_feature_names_and_compressed(tmp_path):
    path = tmp_path / "d.npz"
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.savez_compressed(path, X=X, y=np.array([0, 1]), feature_names=np.array(["p", "q"]))
    ds = load_data(path)
    assert ds.feature_names == ["p", "q"] and ds.target_name == "y"
    X2, names = load_features(path, feature_names=["q", "p"])
    np.testing.assert_array_equal(X2, X[:, ::-1])
    assert names == ["q", "p"]


def test_npz_without_y_has_no_task(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((3, 2)))
    ds = load_data(path)
    assert ds.y is None and ds.task is None and ds.classes is None


def test_npz_target_key(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((3, 2)), labels=np.array([1, 2, 1]))
    assert load_data(path, target="labels").classes == [1, 2]


def npz_bytes(tmp_path, **arrays) -> bytes:
    path = tmp_path / "tmp_build.npz"
    np.savez(path, **arrays)
    return path.read_bytes()


BAD_NPZ = {
    "pickled_X": (
        lambda t: npz_bytes(t, X=np.array([{"a": 1}], dtype=object)),
        {},
        ["'X'", "pickle"],
    ),
    "pickled_y": (
        lambda t: npz_bytes(t, X=np.ones((2, 2)), y=np.array(["a", 1], dtype=object)),
        {},
        ["'y'", "pickle"],
    ),
    "X_1d": (lambda t: npz_bytes(t, X=np.ones(3)), {}, ["2-D", "(3,)"]),
    "X_3d": (lambda t: npz_bytes(t, X=np.ones((2, 2, 2))), {}, ["2-D"]),
    "X_no_rows": (lambda t: npz_bytes(t, X=np.ones((0, 2))), {}, ["no rows"]),
    "X_no_columns": (lambda t: npz_bytes(t, X=np.ones((2, 0))), {}, ["no feature columns"]),
    "X_strings": (lambda t: npz_bytes(t, X=np.array([["a"]])), {}, ["numeric", "<U1"]),
    "X_complex": (lambda t: npz_bytes(t, X=np.ones((2, 2)) * 1j), {}, ["numeric", "complex"]),
    "X_nan": (
        lambda t: npz_bytes(t, X=np.array([[1.0, 2.0], [3.0, np.nan]])),
        {},
        ["row 2", "column 2", "nan"],
    ),
    "y_length_mismatch": (
        lambda t: npz_bytes(t, X=np.ones((3, 2)), y=np.array([0, 1])),
        {},
        ["shape (3,)", "(2,)"],
    ),
    "y_nan": (
        lambda t: npz_bytes(t, X=np.ones((3, 2)), y=np.array([0.5, np.nan, 1.0])),
        {},
        ["row 2", "nan"],
    ),
    "missing_X": (
        lambda t: npz_bytes(t, features=np.ones((2, 2))),
        {},
        ["no array 'X'", "'features'"],
    ),
    "missing_target_key": (lambda t: npz_bytes(t, X=np.ones((2, 2))), {"target": "lab"}, ["'lab'"]),
    "single_class": (
        lambda t: npz_bytes(t, X=np.ones((2, 2)), y=np.array(["a", "a"])),
        {},
        ["at least 2 classes", "'a'"],
    ),
    "not_a_zip": (lambda t: b"X,y\n1,2\n", {}, ["not a valid NPZ"]),
    "npy_not_npz": (lambda t: b"\x93NUMPY\x01\x00", {}, ["not a valid NPZ"]),
    "truncated_zip": (lambda t: npz_bytes(t, X=np.ones((50, 2)))[:200], {}, ["NPZ"]),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_bad_npz_raises_data_error(tmp_path, case):
    make, kwargs, details = BAD_NPZ[case]
    assert_data_error(write(tmp_path, f"bad_{case}.npz", make(tmp_path)), kwargs, details)


def test_npz_bomb_over_max_bytes_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, X=np.zeros((4000, 1000)))  # 32 MB of zeros, ~30 kB on disk
    assert path.stat().st_size < 1_000_000
    with pytest.raises(DataError, match="bomb.npz: holds .* bytes uncompressed, over the limit"):
        load_data(path, max_bytes=1_000_000)


# ---------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------


@pytest.fixture
def pd():
    return pytest.importorskip("pandas")


def test_parquet_equals_csv_twin(tmp_path, pd):
    pytest.importorskip("pyarrow")
    columns = {"a": [1.5, 300.0, 7.0], "b": [-2, 0.25, 8], "label": ["cat", "dog", "cat"]}
    pd.DataFrame(columns).to_parquet(tmp_path / "x.parquet")
    want = load_data(write(tmp_path, "p.csv", PLAIN))
    assert_same_dataset(load_data(tmp_path / "x.parquet"), want)


def test_parquet_index_column_is_not_data(tmp_path, pd):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]}, index=[10, 20, 30])
    frame.to_parquet(tmp_path / "x.parquet")
    ds = load_data(tmp_path / "x.parquet")
    assert ds.feature_names == ["a"] and ds.y.tolist() == [0, 1, 0]


def test_parquet_numeric_strings_and_bool_target(tmp_path, pd):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"a": ["1.5", " 2"], "b": [1, 2], "y": [True, False]})
    frame.to_parquet(tmp_path / "x.parquet")
    ds = load_data(tmp_path / "x.parquet")
    assert ds.X.tolist() == [[1.5, 1.0], [2.0, 2.0]]
    assert ds.task == "classification" and ds.classes == [False, True]


def test_parquet_categorical_and_decimal_columns(tmp_path, pd):
    pytest.importorskip("pyarrow")
    from decimal import Decimal

    frame = pd.DataFrame(
        {
            "a": pd.Categorical([1.5, 2.5, 1.5]),
            "b": [Decimal("1.25"), Decimal("2"), Decimal("3")],
            "y": pd.Categorical(["u", "v", "u"]),
        }
    )
    frame.to_parquet(tmp_path / "x.parquet")
    ds = load_data(tmp_path / "x.parquet")
    assert ds.X.tolist() == [[1.5, 1.25], [2.5, 2.0], [1.5, 3.0]]
    assert ds.y.tolist() == ["u", "v", "u"] and ds.classes == ["u", "v"]


BAD_PARQUET = {
    "null_feature": ({"a": [1.0, None, 3.0], "y": [0, 1, 0]}, ["row 2", "column 'a'", "null"]),
    "nan_feature": ({"a": [1.0, 2.0, float("nan")], "y": [0, 1, 0]}, ["row 3", "column 'a'"]),
    "inf_feature": ({"a": [1.0, np.inf, 3.0], "y": [0, 1, 0]}, ["row 2", "column 'a'", "inf"]),
    "text_feature": ({"a": ["1", "two", "3"], "y": [0, 1, 0]}, ["row 2", "column 'a'", "'two'"]),
    "null_target": ({"a": [1.0, 2.0, 3.0], "y": ["a", None, "b"]}, ["row 2", "column 'y'", "null"]),
    "nan_target": ({"a": [1.0, 2.0, 3.0], "y": [0.5, float("nan"), 1.0]}, ["row 2", "'y'"]),
    "only_target": ({"y": [0, 1]}, ["no feature columns"]),
    "no_rows": ({"a": [], "y": []}, ["no data rows"]),
    "list_column": ({"a": [[1, 2], [3]], "y": [0, 1]}, ["column 'a'", "unsupported type"]),
}


@pytest.mark.parametrize("case", list(BAD_PARQUET))
def test_bad_parquet_raises_data_error(tmp_path, pd, case):
    pytest.importorskip("pyarrow")
    columns, details = BAD_PARQUET[case]
    path = tmp_path / f"bad_{case}.parquet"
    frame = pd.DataFrame(columns)
    if case == "no_rows":
        frame = frame.astype(float)
    frame.to_parquet(path)
    with pytest.raises(DataError) as err:
        load_data(path)
    message = str(err.value)
    assert path.name in message
    for detail in details:
        assert detail in message, f"{detail!r} not in {message!r}"


def test_corrupt_parquet(tmp_path):
    path = write(tmp_path, "c.parquet", b"PAR1" + b"\x00" * 50 + b"PAR1")
    with pytest.raises(DataError, match="c.parquet: is not a valid Parquet file"):
        load_data(path)


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    path = write(tmp_path, "x.parquet", b"PAR1" + b"\x00" * 8)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError, match=r"x\.parquet: .*pip install layerprop\[parquet\]"):
        load_data(path)


# ---------------------------------------------------------------------------------------
# load_features (prediction time)
# ---------------------------------------------------------------------------------------


def test_load_features_selects_columns_in_model_order(tmp_path):
    path = write(tmp_path, "p.csv", "b,label,a\n1,cat,2\n3,dog,4\n")
    X, names = load_features(path, feature_names=["a", "b"])
    np.testing.assert_array_equal(X, [[2.0, 1.0], [4.0, 3.0]])
    assert names == ["a", "b"]


def test_load_features_all_columns(tmp_path):
    X, names = load_features(write(tmp_path, "p.tsv", "a\tb\n1\t2\n3\t4\n"))
    np.testing.assert_array_equal(X, [[1.0, 2.0], [3.0, 4.0]])
    assert names == ["a", "b"]


def test_load_features_names_missing_columns(tmp_path):
    path = write(tmp_path, "p.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"p\.csv: missing feature column\(s\) \['c', 'd'\]"):
        load_features(path, feature_names=["a", "c", "d"])


def test_load_features_refuses_non_numeric_column(tmp_path):
    path = write(tmp_path, "p.csv", "a,label\n1,cat\n")
    with pytest.raises(DataError, match=r"p\.csv: line 2, column 'label': not a number: 'cat'"):
        load_features(path)


def test_load_features_semicolon_mixed_separators(tmp_path):
    path = write(tmp_path, "p.csv", "a;b\n1,5;2.5\n")
    with pytest.raises(DataError, match="p.csv: mixes decimal commas"):
        load_features(path)


def test_load_features_npz_without_names_checks_count(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, X=np.ones((2, 3)))
    X, names = load_features(path, feature_names=["a", "b", "c"])
    assert X.shape == (2, 3) and names == ["a", "b", "c"]
    with pytest.raises(DataError, match="p.npz: X has 3 columns, but the model has 2"):
        load_features(path, feature_names=["a", "b"])


def test_load_features_parquet(tmp_path, pd):
    pytest.importorskip("pyarrow")
    pd.DataFrame({"a": [1.0, 2.0], "y": ["u", "v"], "b": [3, 4]}).to_parquet(tmp_path / "p.parquet")
    X, names = load_features(tmp_path / "p.parquet", feature_names=["b", "a"])
    np.testing.assert_array_equal(X, [[3.0, 1.0], [4.0, 2.0]])


def test_load_features_max_bytes(tmp_path):
    with pytest.raises(DataError, match="p.csv: is .* over the limit of 3 bytes"):
        load_features(write(tmp_path, "p.csv", "a\n1\n"), max_bytes=3)


def test_load_features_bundled():
    X, names = load_features("iris", feature_names=["petal width (cm)", "sepal length (cm)"])
    assert X.shape == (150, 2) and names == ["petal width (cm)", "sepal length (cm)"]


# ---------------------------------------------------------------------------------------
# Bundled data sets
# ---------------------------------------------------------------------------------------

BUNDLED = {
    "digits": ((1797, 64), "classification", 10),
    "iris": ((150, 4), "classification", 3),
    "wine": ((178, 13), "classification", 3),
    "breast_cancer": ((569, 30), "classification", 2),
    "diabetes": ((442, 10), "regression", None),
    "xor": ((4, 2), "classification", 2),
    "parity": ((16, 4), "classification", 2),
    "moons": ((200, 2), "classification", 2),
    "circles": ((200, 2), "classification", 2),
    "circle": ((500, 2), "classification", 2),
    "gauss": ((500, 2), "classification", 2),
    "spiral": ((500, 2), "classification", 2),
    "plane": ((500, 2), "regression", None),
    "multigauss": ((500, 2), "classification", 5),
}


def test_every_registered_data_set_is_tested():
    assert set(BUNDLED) == set(DATASETS)


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_data_set(name):
    shape, task, n_classes = BUNDLED[name]
    ds = load_dataset(name)
    assert ds.X.shape == shape and ds.X.dtype == np.float64 and np.isfinite(ds.X).all()
    assert ds.y.shape == (shape[0],)
    assert ds.task == task and ds.name == name
    assert len(ds.feature_names) == shape[1]
    if task == "classification":
        assert len(ds.classes) == n_classes
        assert ds.classes == np.unique(ds.y).tolist()
    else:
        assert ds.classes is None and ds.y.dtype == np.float64
    assert_same_dataset(load_data(name), ds)


def test_list_datasets_matches_registry():
    listed = list_datasets()
    assert [name for name, _, _ in listed] == list(DATASETS)
    assert {name: task for name, task, _ in listed} == {n: v[1] for n, v in BUNDLED.items()}
    assert all(description for _, _, description in listed)


def test_unknown_data_set_lists_known_names():
    with pytest.raises(DataError, match=r"unknown data set 'mnist'.*digits.*iris.*parity"):
        load_dataset("mnist")


def test_xor_and_parity_values():
    xor = load_dataset("xor")
    assert xor.X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and xor.y.tolist() == [0, 1, 1, 0]
    parity = load_dataset("parity")
    assert {tuple(x) for x in parity.X.astype(int).tolist()} == {
        tuple((i >> k) & 1 for k in (3, 2, 1, 0)) for i in range(16)
    }
    np.testing.assert_array_equal(parity.y, parity.X.sum(axis=1) % 2)


def test_noisy_xor_samples():
    ds = load_dataset("xor", n_samples=300, noise=0.05, seed=3)
    assert ds.X.shape == (300, 2)
    corner = np.round(ds.X)
    np.testing.assert_array_equal(ds.y, (corner[:, 0] != corner[:, 1]).astype(int))


@pytest.mark.parametrize("name", ["iris", "parity", "digits"])
def test_fixed_data_sets_refuse_n_samples(name):
    with pytest.raises(DataError, match=f"{name}.*fixed size"):
        load_dataset(name, n_samples=10)


@pytest.mark.parametrize("name", ["moons", "circles", "xor", "circle", "spiral", "plane"])
def test_generated_data_sets_are_deterministic_by_seed(name):
    a = load_dataset(name, seed=5, n_samples=64, noise=0.2)
    b = load_dataset(name, seed=5, n_samples=64, noise=0.2)
    c = load_dataset(name, seed=6, n_samples=64, noise=0.2)
    assert_same_dataset(a, b)
    assert a.X.shape == (64, 2)
    assert not np.array_equal(a.X, c.X)


def test_bundled_with_forced_task():
    ds = load_data("iris", task="regression")
    assert ds.task == "regression" and ds.y.dtype == np.float64 and ds.classes is None
    with pytest.raises(DataError, match="fixed target"):
        load_data("iris", target="species")


# ---------------------------------------------------------------------------------------
# TensorFlow-Playground toy sets
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", data.TOY_2D_KINDS)
def test_toy_2d_deterministic_by_seed(kind):
    a = make_toy_2d(kind, n_samples=200, noise=0.1, seed=7)
    b = make_toy_2d(kind, n_samples=200, noise=0.1, seed=7)
    c = make_toy_2d(kind, n_samples=200, noise=0.1, seed=8)
    assert_same_dataset(a, b)
    assert not np.array_equal(a.X, c.X)
    assert a.X.shape == (200, 2) and a.feature_names == ["x1", "x2"]
    assert np.abs(a.X).max() < 12


@pytest.mark.parametrize("kind", data.TOY_2D_KINDS)
def test_toy_2d_task_and_classes(kind):
    ds = make_toy_2d(kind, n_samples=101)
    if kind == "plane":
        assert ds.task == "regression" and ds.classes is None
    else:
        assert ds.task == "classification"
        assert ds.classes == ([0, 1, 2, 3, 4] if kind == "multigauss" else [0, 1])


def test_toy_labels_without_noise_follow_the_rule():
    circle = make_toy_2d("circle", n_samples=300)
    np.testing.assert_array_equal(circle.y, np.hypot(*circle.X.T) < 2.5)
    xor = make_toy_2d("xor", n_samples=300)
    np.testing.assert_array_equal(xor.y, xor.X[:, 0] * xor.X[:, 1] >= 0)
    assert np.abs(xor.X).min() >= 0.3
    plane = make_toy_2d("plane", n_samples=300)
    np.testing.assert_allclose(plane.y, plane.X.sum(axis=1) / 10)
    gauss = make_toy_2d("gauss", n_samples=300)
    assert np.all(np.sign(gauss.X.mean(axis=1))[gauss.y == 1].mean() > 0.8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "moons"}, "kind must be one of"),
        ({"kind": "circle", "n_samples": 1}, "n_samples"),
        ({"kind": "circle", "n_samples": 2.5}, "n_samples"),
        ({"kind": "circle", "noise": -0.1}, "noise"),
        ({"kind": "circle", "noise": float("nan")}, "noise"),
    ],
    ids=["unknown_kind", "one_sample", "float_samples", "negative_noise", "nan_noise"],
)
def test_toy_2d_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_toy_2d(**kwargs)


# ---------------------------------------------------------------------------------------
# Train/test split
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, fraction, n_test", [(10, 0.2, 2), (10, 0.25, 3), (7, 0.0, 0), (2, 0.5, 1)]
)
def test_split_sizes_disjoint_and_covering(n, fraction, n_test):
    train, test = train_test_split_indices(n, fraction, seed=0)
    assert len(test) == n_test and len(train) == n - n_test
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(n))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_split_deterministic_by_seed():
    a = train_test_split_indices(100, 0.3, seed=1)
    b = train_test_split_indices(100, 0.3, seed=np.random.default_rng(1))
    c = train_test_split_indices(100, 0.3, seed=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


def test_split_stratified_keeps_proportions():
    labels = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    train, test = train_test_split_indices(100, 0.2, seed=0, stratify=labels)
    assert len(test) == 20
    _, counts = np.unique(labels[test], return_counts=True)
    assert counts.tolist() == [12, 6, 2]


def test_split_stratified_keeps_a_rare_class_in_training():
    labels = np.array([0] * 9 + [1])
    train, test = train_test_split_indices(10, 0.5, seed=0, stratify=labels)
    assert 9 in train


@pytest.mark.parametrize(
    "args",
    [(10, 1.0, 0), (10, -0.1, 0), (1, 0.5, 0), (-1, 0.1, 0), (10, 0.2, 0, np.zeros(3))],
    ids=["fraction_one", "negative_fraction", "no_train_left", "negative_n", "stratify_shape"],
)
def test_split_bad_arguments(args):
    with pytest.raises(ValueError):
        train_test_split_indices(*args)


# ---------------------------------------------------------------------------------------
# Module hygiene
# ---------------------------------------------------------------------------------------


def test_import_is_lazy():
    # Load the module file alone, so the package __init__ (other modules) cannot interfere.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('lpdata', {data.__file__!r})\n"
        "module = sys.modules['lpdata'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted(m for m in ('sklearn', 'pandas', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_doctests():
    result = doctest.testmod(data, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
