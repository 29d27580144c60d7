"""Data: strict readers for user files (CSV, TSV, Parquet, NPZ) and the bundled data sets.

Every problem with user data raises :class:`DataError`, whose message names the file, the
line (or row) and column, and the problem. Nothing is imputed or guessed silently: a cell
is a finite number, a label, or an error. The rules are listed in ``docs/data.md``.

pandas, pyarrow and scikit-learn are imported inside the functions that need them, so
``import layerprop.data`` stays fast.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "TASKS",
    "TOY_2D_KINDS",
    "check_classification_target",
    "list_datasets",
    "load_data",
    "load_dataset",
    "load_features",
    "make_toy_2d",
    "train_test_split_indices",
]

TASKS = ("classification", "regression")
MAX_LINE_BYTES = 10_000_000  # one CSV record (a line, or several lines of quoted newlines)
MAX_COLUMNS = 100_000
MAX_SHOWN = 40  # characters of a bad value quoted in a message

_TEXT_SUFFIXES = {".csv": ",", ".txt": ",", ".tsv": "\t"}
_COMPRESSED_SUFFIXES = {".gz", ".tgz", ".bz2", ".xz", ".lzma", ".zip", ".zst", ".7z"}
_COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",
    b"(\xb5/\xfd": "zstd",
    b"7z\xbc\xaf\x27\x1c": "7z",
}
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"


class DataError(ValueError):
    """A problem with user data: the message names the file, row or column, and the problem."""


@dataclass
class Dataset:
    """Features, target and metadata of one data set.

    Attributes
    ----------
    X : ndarray of shape (n, d), float64, all finite
    y : ndarray of shape (n,) or None
        float64 for regression; the raw labels (str, int, float or bool) for classification.
    feature_names : list of str
    target_name : str or None
    task : {"classification", "regression"} or None (no target)
    name : str
        Data set name or file name.
    classes : list or None
        Sorted unique labels for classification.
    """

    X: np.ndarray = field(repr=False)
    y: np.ndarray | None = field(repr=False)
    feature_names: list[str]
    target_name: str | None
    task: str | None
    name: str
    classes: list | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``X.shape``: (number of examples, number of features)."""
        return self.X.shape


# ---------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------


def load_data(source, *, target=None, task=None, max_bytes=2_000_000_000) -> Dataset:
    """Read a data file or a bundled data set into a :class:`Dataset`.

    Parameters
    ----------
    source : str or os.PathLike
        A path to a ``.csv``, ``.tsv``, ``.txt`` (comma separated), ``.parquet`` or
        ``.npz`` file, or the name of a bundled data set (see :func:`list_datasets`).
        A string naming a bundled data set wins over a file of that name; write
        ``./iris`` to mean the file.
    target : str or int, optional
        The target column: its name, or its integer index (an ``int``, or a string of
        digits that is not a column name; negative counts from the end). Default: the
        last column. For NPZ files, the key of the label array (default ``"y"``; the
        features are always under ``"X"``).
    task : {None, "classification", "regression"}
        None infers it: classification when the labels are not all numbers, or are all
        whole numbers (or booleans) with at most ``max(20, isqrt(n))`` distinct values;
        regression otherwise.
    max_bytes : int
        Files larger than this are refused (for Parquet and NPZ, the uncompressed size).

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        For any problem with the file or its contents.

    Examples
    --------
    >>> ds = load_data("iris")
    >>> ds.X.shape, ds.task, ds.classes
    ((150, 4), 'classification', [0, 1, 2])
    """
    _check_task(task)
    if isinstance(source, str) and source in DATASETS:
        return _bundled_with(load_dataset(source), target, task)
    path, where = _as_path(source)
    fmt = _file_format(path, where, max_bytes)
    if fmt == "npz":
        X, y, names, target_name, row_label = _read_npz(path, where, max_bytes, target, task)
        if y is None:
            return Dataset(X, None, names, None, None, path.name)
    else:
        reader = _read_parquet if fmt == "parquet" else _read_text
        table = reader(path, where, max_bytes, _select_for_training(target, where), fmt)
        X, names, target_name = table.X, table.feature_names, table.target_name
        y, row_label = _target_values(table, task, where), table.row_label
    y, task, classes = _resolve_task(y, task, where, target_name, row_label)
    return Dataset(X, y, names, target_name, task, path.name, classes)


def load_features(
    source, *, feature_names=None, max_bytes=2_000_000_000
) -> tuple[np.ndarray, list[str]]:
    """Read the features of a file for prediction.

    Parameters
    ----------
    source : str or os.PathLike
        A data file (same formats as :func:`load_data`) or a bundled data set name.
    feature_names : list of str, optional
        The columns the model was trained on. The file must contain all of them (it may
        hold more, such as a target column, which are ignored); X has them in this order.
        For an NPZ file without a ``feature_names`` array, X is used as is and must have
        ``len(feature_names)`` columns. None: every column is a feature and must be numeric.
    max_bytes : int
        As in :func:`load_data`.

    Returns
    -------
    X : ndarray of shape (n, d), float64
    names : list of str

    Examples
    --------
    >>> X, names = load_features("iris", feature_names=["petal width (cm)"])
    >>> X.shape, names
    ((150, 1), ['petal width (cm)'])
    """
    if feature_names is not None:
        feature_names = [str(name) for name in feature_names]
        if len(set(feature_names)) != len(feature_names):
            raise ValueError(f"feature_names has duplicates: {feature_names!r}")
    if isinstance(source, str) and source in DATASETS:
        ds = load_dataset(source)
        idx = _feature_indices(ds.feature_names, feature_names, source)
        return ds.X[:, idx], [ds.feature_names[i] for i in idx]
    path, where = _as_path(source)
    fmt = _file_format(path, where, max_bytes)
    if fmt == "npz":
        return _npz_features(path, where, feature_names, max_bytes)
    def select(header):
        return _feature_indices(header, feature_names, where), None

    reader = _read_parquet if fmt == "parquet" else _read_text
    table = reader(path, where, max_bytes, select, fmt)
    return table.X, table.feature_names


def check_classification_target(y, name) -> list:
    """Check that labels ``y`` hold at least two classes and return the sorted classes.

    Parameters
    ----------
    y : array-like of shape (n,)
    name : str
        The file or data set name, used in the message.

    Returns
    -------
    list
        The sorted unique labels, as Python scalars.

    Raises
    ------
    DataError
        When there are fewer than 2 classes.

    Examples
    --------
    >>> check_classification_target(["b", "a", "b"], "f.csv")
    ['a', 'b']
    """
    classes = np.unique(np.asarray(y)).tolist()
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "no labels"
        raise DataError(f"{name}: classification needs at least 2 classes; found {found}")
    return classes


def train_test_split_indices(n, test_fraction, seed, stratify=None):
    """Split ``range(n)`` into sorted train and test indices, deterministically from ``seed``.

    Parameters
    ----------
    n : int
        Number of examples.
    test_fraction : float in [0, 1)
        The test set has ``ceil(test_fraction * n)`` examples (0 gives an empty test set).
    seed : int or numpy.random.Generator
    stratify : array-like of shape (n,), optional
        Labels; each class is split in the same proportion (largest remainders), and a
        class keeps at least one example in the training set.

    Returns
    -------
    train_idx, test_idx : ndarray of int

    Examples
    --------
    >>> train, test = train_test_split_indices(10, 0.2, seed=0)
    >>> len(train), len(test), sorted(set(train) | set(test)) == list(range(10))
    (8, 2, True)
    """
    n = _check_int(n, "n", minimum=0)
    if isinstance(test_fraction, bool) or not (
        isinstance(test_fraction, Real) and 0 <= test_fraction < 1
    ):
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    n_test = math.ceil(test_fraction * n)
    if n_test and n_test >= n:
        raise ValueError(f"test_fraction={test_fraction!r} leaves no training data for n={n}")
    rng = np.random.default_rng(seed)
    if stratify is None:
        test = rng.permutation(n)[:n_test]
    else:
        test = _stratified_test(np.asarray(stratify), n, n_test, rng)
    is_test = np.zeros(n, dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _stratified_test(labels, n, n_test, rng):
    """Test indices drawing from each class in proportion (largest remainder method)."""
    if labels.shape != (n,):
        raise ValueError(f"stratify must have shape ({n},), got {labels.shape}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (n_test / n) if n else counts * 0.0
    take = np.floor(quota).astype(int)
    by_remainder = np.argsort(-(quota - take), kind="stable")
    take[by_remainder[: n_test - take.sum()]] += 1
    take = np.minimum(take, np.maximum(counts - 1, 0))
    picks = [rng.permutation(np.flatnonzero(inverse == c))[:k] for c, k in enumerate(take)]
    return np.concatenate(picks) if picks else np.array([], dtype=int)


# ---------------------------------------------------------------------------------------
# Files: path checks and format detection
# ---------------------------------------------------------------------------------------


def _as_path(source) -> tuple[Path, str]:
    """The path and its display form; DataError if it is not a readable regular file."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or a data set name, got {type(source).__name__}")
    path = Path(source)
    where = str(source)
    if not path.exists():
        hint = ""
        if isinstance(source, str) and not path.suffix and os.sep not in source:
            hint = f" (nor a bundled data set: {', '.join(DATASETS)})"
        raise DataError(f"file not found: {where}{hint}")
    if path.is_dir():
        raise DataError(f"{where}: is a directory, not a data file")
    if not path.is_file():
        raise DataError(f"{where}: is not a regular file")
    return path, where


def _file_format(path: Path, where: str, max_bytes: int) -> str:
    """'csv', 'tsv', 'parquet' or 'npz', from the suffix, checked against the first bytes."""
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{where}: is {size} bytes, over the limit of {max_bytes} bytes")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DataError(f"{where}: cannot be read: {e.strerror or e}") from None
    suffix = path.suffix.lower()
    compressed = next((k for m, k in _COMPRESSED_MAGIC.items() if head.startswith(m)), None)
    if suffix == ".npz":
        if compressed != "zip":
            raise DataError(f"{where}: is not a valid NPZ file (not a zip archive)")
        return "npz"
    if compressed or suffix in _COMPRESSED_SUFFIXES:
        kind = compressed or suffix
        raise DataError(f"{where}: compressed files are not supported ({kind}); decompress first")
    if suffix == ".parquet":
        if not head.startswith(_PARQUET_MAGIC):
            raise DataError(f"{where}: is not a valid Parquet file (no PAR1 magic bytes)")
        return "parquet"
    if suffix in _TEXT_SUFFIXES:
        if head.startswith(_PARQUET_MAGIC):
            raise DataError(f"{where}: looks like a Parquet file; name it .parquet")
        return "tsv" if suffix == ".tsv" else "csv"
    raise DataError(
        f"{where}: unsupported file type {suffix or '(no suffix)'!r}; "
        "use .csv, .tsv, .txt, .parquet or .npz"
    )


# ---------------------------------------------------------------------------------------
# Column selection (shared by the CSV and Parquet readers)
# ---------------------------------------------------------------------------------------


@dataclass
class _Table:
    """What a tabular reader returns: features, raw target cells, and their row labels."""

    X: np.ndarray
    feature_names: list[str]
    target_name: str | None
    target: list | np.ndarray | None  # str cells (CSV, Parquet strings) or a numeric array
    target_rows: list[int] | None  # line (CSV) or row (Parquet) number of each target cell
    row_label: str  # "line" or "row"
    numbers: "_NumberParser | None" = None


def _select_for_training(target, where) -> Callable:
    """A function header -> (feature indices, target index): target given or the last column."""

    def select(header):
        t = _target_index(header, target, where)
        features = [j for j in range(len(header)) if j != t]
        if not features:
            raise DataError(f"{where}: has no feature columns, only the target {header[t]!r}")
        return features, t

    return select


def _target_index(header: list[str], target, where: str) -> int:
    """Index of the target column: by name, by integer index, or the last column."""
    if target is None:
        return len(header) - 1
    if isinstance(target, str) and target in header:
        return header.index(target)
    index = target
    if isinstance(target, str) and re.fullmatch(r"-?[0-9]+", target.strip()):
        index = int(target)
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        if -len(header) <= index < len(header):
            return int(index) % len(header)
        raise DataError(
            f"{where}: target column index {index} is out of range for {len(header)} columns"
        )
    raise DataError(
        f"{where}: target column {target!r} not found; the columns are {_names_list(header)}"
    )


def _feature_indices(header: list[str], feature_names, where: str) -> list[int]:
    """Indices of feature_names in header (all columns when None); DataError names the missing."""
    if feature_names is None:
        return list(range(len(header)))
    missing = [name for name in feature_names if name not in header]
    if missing:
        raise DataError(
            f"{where}: missing feature column(s) {_names_list(missing)}; "
            f"the columns are {_names_list(header)}"
        )
    return [header.index(name) for name in feature_names]


def _check_header(names: list[str], where: str) -> None:
    """Column names: not empty, not too many, no duplicates."""
    if len(names) > MAX_COLUMNS:
        raise DataError(f"{where}: has {len(names)} columns; at most {MAX_COLUMNS} are supported")
    for j, name in enumerate(names):
        if not name:
            raise DataError(
                f"{where}: column {j + 1} has an empty name "
                "(an unnamed index column? write the file without the index)"
            )
    seen = set()
    dupes = sorted({name for name in names if name in seen or seen.add(name)})
    if dupes:
        raise DataError(f"{where}: duplicate column name(s) {_names_list(dupes)}")


def _names_list(names, limit=20) -> str:
    """Names for a message: ['a', 'b', ...] (first `limit` of them, then the count)."""
    if len(names) <= limit:
        return "[" + ", ".join(repr(n) for n in names) + "]"
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}, ...] ({len(names)} in all)"


def _short(value) -> str:
    """repr of a value, truncated for messages."""
    text = str(value)
    return repr(text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...")


# ---------------------------------------------------------------------------------------
# Numbers: one strict parser for text cells
# ---------------------------------------------------------------------------------------


class _CellError(Exception):
    """A bad cell; the caller adds the file, line and column."""


_DIGITS_AND_SEPARATORS = re.compile(r"[+-]?[0-9.,]+(?:[eE][+-]?[0-9]+)?")


def _to_float(text: str) -> float:
    """A stripped text cell as a finite float; _CellError says why not."""
    if not text:
        raise _CellError("empty cell (missing value); layerprop does not impute")
    if text.isascii() and "_" not in text:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is not None:
            if math.isfinite(value):
                return value
            if text.lower().lstrip("+-") == "nan":
                raise _CellError("NaN (missing value); layerprop does not impute")
            if text.lower().lstrip("+-") in ("inf", "infinity"):
                raise _CellError(f"infinite value {_short(text)}")
            raise _CellError(f"{_short(text)} overflows float64 (max about 1.8e308)")
        if "j" in text.lower():
            try:
                complex(text)
                raise _CellError(f"complex number {_short(text)} is not supported")
            except ValueError:
                pass
    raise _CellError(f"not a number: {_short(text)}")


class _NumberParser:
    """Parses the number cells of one file, tracking its decimal separator.

    With ``;`` as the delimiter, ``1,5`` means 1.5 (decimal comma). A file that also has a
    number with a decimal point is ambiguous ("1.500" could be 1500), and :meth:`check`
    refuses it; so does a number with both separators ("1.234,5").
    """

    def __init__(self, decimal_comma: bool):
        self.decimal_comma = decimal_comma
        self.first_comma = None  # (line, column, text) of the first decimal comma
        self.first_point = None

    def __call__(self, cell: str, where_cell) -> float:
        text = cell.strip()
        if not self.decimal_comma or ("," not in text and "." not in text):
            return _to_float(text)
        if "," in text and ("." in text or text.count(",") > 1):
            if _DIGITS_AND_SEPARATORS.fullmatch(text):
                raise _CellError(
                    f"ambiguous number {_short(text)}: thousands separators are not supported"
                )
            raise _CellError(f"not a number: {_short(text)}")
        value = _to_float(text.replace(",", "."))
        if "," in text:
            self.first_comma = self.first_comma or (*where_cell, text)
        else:
            self.first_point = self.first_point or (*where_cell, text)
        return value

    def merge(self, other: "_NumberParser") -> None:
        self.first_comma = self.first_comma or other.first_comma
        self.first_point = self.first_point or other.first_point

    def check(self, where: str) -> None:
        """DataError if the file mixes decimal commas and decimal points."""
        if self.first_comma and self.first_point:
            (l1, c1, t1), (l2, c2, t2) = self.first_comma, self.first_point
            raise DataError(
                f"{where}: mixes decimal commas (line {l1}, column {c1!r}: {_short(t1)}) and "
                f"decimal points (line {l2}, column {c2!r}: {_short(t2)}); "
                "use one decimal separator"
            )


# ---------------------------------------------------------------------------------------
# CSV / TSV
# ---------------------------------------------------------------------------------------


class _Lines:
    """Iterates the decoded lines of a UTF-8 file in bounded memory.

    Tracks the line number and byte offset (for messages), strips a BOM, refuses NUL bytes,
    invalid UTF-8, a record over MAX_LINE_BYTES or with more than MAX_COLUMNS fields, and a
    file that grows past max_bytes while being read.
    """

    def __init__(self, f, where: str, max_bytes: int):
        self.f, self.where, self.max_bytes = f, where, max_bytes
        self.line = 0
        self.offset = 0
        self.delimiter = None  # set once sniffed; used to count fields per record
        self.new_record()

    def new_record(self) -> None:
        self.record_bytes = 0
        self.record_fields = 1

    def __iter__(self):
        while raw := self.f.readline(MAX_LINE_BYTES + 1):
            self.line += 1
            yield self._decode(raw)
            self.offset += len(raw)

    def _decode(self, raw: bytes) -> str:
        where, line, start = self.where, self.line, self.offset
        self.record_bytes += len(raw)
        if len(raw) > MAX_LINE_BYTES or self.record_bytes > MAX_LINE_BYTES:
            raise DataError(f"{where}: line {line}: a row is longer than {MAX_LINE_BYTES} bytes")
        if start + len(raw) > self.max_bytes:
            raise DataError(f"{where}: is over the limit of {self.max_bytes} bytes")
        if line == 1:
            raw, start = self._strip_bom(raw), start + (3 if raw.startswith(_BOM) else 0)
        if b"\x00" in raw:
            at = start + raw.index(b"\x00")
            raise DataError(f"{where}: NUL byte at offset {at} (line {line}); not a text file?")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{where}: is not valid UTF-8: byte 0x{raw[e.start]:02x} at offset "
                f"{start + e.start} (line {line}); save the file as UTF-8"
            ) from None
        if self.delimiter:
            self.count_fields(text)
        return text

    def count_fields(self, text: str) -> None:
        """Add the delimiters of text to the record's field count, refusing too many."""
        self.record_fields += text.count(self.delimiter)
        if self.record_fields > MAX_COLUMNS:
            raise DataError(
                f"{self.where}: line {self.line}: more than {MAX_COLUMNS} fields in a row"
            )

    def _strip_bom(self, raw: bytes) -> bytes:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataError(f"{self.where}: is UTF-16; save it as UTF-8")
        return raw[len(_BOM):] if raw.startswith(_BOM) else raw


def _sniff_delimiter(first_line: str, fmt: str) -> str:
    """Tab for .tsv; for .csv/.txt a comma, unless the header has no comma but a ; or tab."""
    if fmt == "tsv":
        return "\t"
    if "," not in first_line:
        if ";" in first_line:
            return ";"
        if "\t" in first_line:
            return "\t"
    return ","


def _read_text(path, where, max_bytes, select, fmt) -> _Table:
    """Read a CSV/TSV file: select(header) picks the feature and target columns."""
    try:
        with open(path, "rb") as f:
            return _parse_text(f, where, max_bytes, select, fmt)
    except OSError as e:
        raise DataError(f"{where}: cannot be read: {e.strerror or e}") from None


def _parse_text(f, where, max_bytes, select, fmt) -> _Table:
    lines = _Lines(f, where, max_bytes)
    line_iter = iter(lines)
    first = next(line_iter, None)
    if first is None:
        raise DataError(f"{where}: is empty")
    lines.delimiter = delimiter = _sniff_delimiter(first, fmt)
    lines.count_fields(first)
    rows = csv.reader(itertools.chain([first], line_iter), delimiter=delimiter, strict=True)
    header = _read_header(rows, lines, where)
    feature_idx, target_idx = select(header)
    numbers = _NumberParser(decimal_comma=delimiter == ";")
    X, target, target_lines = _read_body(
        rows, lines, where, header, feature_idx, target_idx, numbers
    )
    if target is None:
        numbers.check(where)
    names = [header[j] for j in feature_idx]
    target_name = None if target_idx is None else header[target_idx]
    return _Table(X, names, target_name, target, target_lines, "line", numbers)


def _next_row(rows, lines, where):
    """The next CSV record (None at the end); csv errors become DataError with the line."""
    start = lines.line + 1
    try:
        row = next(rows, None)
    except csv.Error as e:
        hint = next((h for key, h in _CSV_HINTS.items() if key in str(e)), "")
        raise DataError(f"{where}: line {start}: malformed CSV: {e}{hint}") from None
    lines.new_record()
    return row, start


_CSV_HINTS = {
    "end of data": " (an unclosed quote?)",
    "field limit": " (an unclosed quote, or a value of over 131072 characters?)",
    "new-line character": " (bare CR line ends? save the file with LF or CRLF line ends)",
}


def _read_header(rows, lines, where) -> list[str]:
    header, start = _next_row(rows, lines, where)
    while header == []:  # leading blank lines: fine only if the whole file is blank
        header, start = _next_row(rows, lines, where)
        if header not in ([], None):
            raise DataError(f"{where}: line 1 is blank; the header must be the first line")
    if header is None:
        raise DataError(f"{where}: is empty")
    names = [name.strip() for name in header]
    _check_header(names, where)
    return names


def _read_body(rows, lines, where, header, feature_idx, target_idx, numbers):
    """Parse the data rows: features into a float64 (n, d) array, target cells kept as text."""
    from array import array

    values = array("d")
    target, target_lines = ([], []) if target_idx is not None else (None, None)
    blank_line = None
    ncols = len(header)
    while True:
        row, line = _next_row(rows, lines, where)
        if row is None:
            break
        if row == []:
            blank_line = blank_line or line
            continue
        if blank_line:
            raise DataError(f"{where}: line {blank_line} is blank (a missing row?)")
        if len(row) != ncols:
            raise DataError(_ragged_message(where, line, len(row), ncols, numbers))
        values.extend(_parse_cells(row, feature_idx, header, line, where, numbers))
        if target is not None:
            target.append(_label_cell(row[target_idx], header[target_idx], line, where))
            target_lines.append(line)
    if not values and not target:
        raise DataError(f"{where}: has a header but no data rows")
    X = np.frombuffer(values, dtype=np.float64).reshape(-1, len(feature_idx))
    return X, target, target_lines


def _parse_cells(row, feature_idx, header, line, where, numbers) -> list[float]:
    """The feature cells of one row as floats; DataError names the first bad cell."""
    fast = _fast_floats([row[j] for j in feature_idx]) if not numbers.decimal_comma else None
    if fast is not None:
        return fast
    out = []
    for j in feature_idx:
        try:
            out.append(numbers(row[j], (line, header[j])))
        except _CellError as e:
            raise DataError(f"{where}: line {line}, column {header[j]!r}: {e}") from None
    return out


def _fast_floats(cells: list[str]) -> list[float] | None:
    """The cells as floats when all are plain finite ASCII numbers, else None (slow path).

    Equivalent to _to_float on each stripped cell for such rows, only faster.
    """
    joined = "".join(cells)
    if not joined.isascii() or "_" in joined:
        return None
    try:
        values = list(map(float, cells))
    except ValueError:
        return None
    return values if all(map(math.isfinite, values)) else None


def _label_cell(cell: str, column: str, line: int, where: str) -> str:
    text = cell.strip()
    if not text:
        raise DataError(f"{where}: line {line}, column {column!r}: empty target cell")
    return text.replace("\r\n", "\n") if "\r" in text else text


def _ragged_message(where, line, got, expected, numbers) -> str:
    msg = f"{where}: line {line} has {got} fields, but the header has {expected}"
    if got > expected and not numbers.decimal_comma:
        msg += " (a trailing delimiter, or one unquoted inside a value such as a decimal comma?)"
    return msg


# ---------------------------------------------------------------------------------------
# Target values: text cells -> numbers or labels; task inference
# ---------------------------------------------------------------------------------------


def _target_values(table: _Table, task, where) -> np.ndarray:
    """The target as a numeric array if every cell is a number, else a str array of labels."""
    if isinstance(table.target, np.ndarray):
        return table.target
    cells, rows, label = table.target, table.target_rows, table.row_label
    parser = _NumberParser(table.numbers.decimal_comma if table.numbers else False)
    numbers, first_bad = [], None
    for cell, row in zip(cells, rows):
        try:
            numbers.append(parser(cell, (row, table.target_name)))
        except _CellError as e:
            if not (str(e).startswith("not a number") or "complex" in str(e)):
                at = f"{label} {row}, column {table.target_name!r}"
                raise DataError(f"{where}: {at}: {e}") from None
            first_bad = first_bad or (row, cell)
    if first_bad is None:
        if table.numbers:
            table.numbers.merge(parser)
            table.numbers.check(where)
        return np.asarray(numbers, dtype=np.float64)
    if table.numbers:
        table.numbers.check(where)
    if numbers and task != "classification":
        row, cell = first_bad
        raise DataError(
            f"{where}: target column {table.target_name!r} holds numbers but also "
            f"{_short(cell)} on {label} {row}; fix the value, or pass task='classification' "
            "to treat every value as a label"
        )
    if task == "regression":
        row, cell = first_bad
        raise DataError(
            f"{where}: task='regression' needs a numeric target, but column "
            f"{table.target_name!r} holds {_short(cell)} on {label} {row}"
        )
    return np.asarray(cells, dtype=str)


def _resolve_task(y: np.ndarray, task, where, target_name, row_label="row"):
    """(y, task, classes): y converted for the task (given, or inferred as documented)."""
    if y.dtype.kind in "fc" and y.size:
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise DataError(
                f"{where}: {row_label} {bad[0] + 1}, target {target_name!r}: "
                f"non-finite value {float(y[bad[0]])!r}"
            )
    if y.dtype.kind == "c":
        raise DataError(f"{where}: target {target_name!r} is complex; not supported")
    inferred = task is None
    if inferred:
        task = _infer_task(y)
    if task == "regression":
        if y.dtype.kind not in "biuf":
            raise DataError(f"{where}: task='regression' needs a numeric target {target_name!r}")
        return y.astype(np.float64), task, None
    if y.dtype.kind == "f" and np.all(y == np.round(y)) and np.all(np.abs(y) < 2**62):
        y = y.astype(np.int64)
    try:
        return y, task, check_classification_target(y, where)
    except DataError as e:
        hint = " (pass task='regression' for a numeric target)"
        raise DataError(f"{e}{hint}" if inferred and y.dtype.kind in "iuf" else str(e)) from None


def _infer_task(y: np.ndarray) -> str:
    """Classification for labels, booleans, or few distinct whole numbers; else regression."""
    if y.dtype.kind in "bUSO":
        return "classification"
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        return "regression"
    n_distinct = np.unique(y).size
    return "classification" if n_distinct <= max(20, math.isqrt(y.size)) else "regression"


def _check_task(task) -> None:
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be None, 'classification' or 'regression', got {task!r}")


# ---------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------


def _read_parquet(path, where, max_bytes, select, fmt) -> _Table:
    """Read a Parquet file with pyarrow: numeric columns, or text columns of numbers/labels."""
    pq = _import_parquet(where)
    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > max_bytes:
            raise _too_big(where, size, max_bytes)
        header = _parquet_columns(pf)
        _check_header(header, where)
        feature_idx, target_idx = select(header)
        wanted = [header[j] for j in feature_idx + ([] if target_idx is None else [target_idx])]
        table = pf.read(columns=wanted)
    except DataError:
        raise
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for corrupt files
        raise DataError(f"{where}: is not a valid Parquet file: {e}") from None
    if table.num_rows == 0:
        raise DataError(f"{where}: has a header but no data rows")
    names = [header[j] for j in feature_idx]
    X = np.column_stack([_arrow_feature(table.column(c), c, where) for c in names])
    if target_idx is None:
        return _Table(X, names, None, None, None, "row")
    tname = header[target_idx]
    values = _arrow_target(table.column(tname), tname, where)
    rows = list(range(1, table.num_rows + 1)) if isinstance(values, list) else None
    return _Table(X, names, tname, values, rows, "row")


def _too_big(where, size, max_bytes) -> DataError:
    return DataError(f"{where}: holds {size} bytes uncompressed, over the limit of {max_bytes}")


def _import_parquet(where):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{where}: reading Parquet files needs pyarrow: pip install layerprop[parquet]"
        ) from None
    return pq


def _parquet_columns(pf) -> list[str]:
    """Data column names, without the index columns pandas may have stored."""
    pandas_meta = pf.schema_arrow.pandas_metadata or {}
    index_cols = {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}
    return [name for name in pf.schema_arrow.names if name not in index_cols]


def _arrow_plain(column, name, where):
    """The column decoded from dictionary form, refusing nulls (naming the first row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if column.null_count:
        first = int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where}: row {first + 1}, column {name!r}: missing value (null)")
    return column


def _arrow_kind(column) -> str:
    """'number', 'text' or the unsupported type's name."""
    import pyarrow as pa

    t = column.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return "number"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return str(t)


def _arrow_feature(column, name, where) -> np.ndarray:
    """A Parquet column as finite float64 values."""
    column = _arrow_plain(column, name, where)
    kind = _arrow_kind(column)
    if kind in ("number", "decimal"):
        import pyarrow as pa

        values = column.cast(pa.float64()) if kind == "decimal" else column
        values = np.asarray(values.to_numpy(), dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = bad[0]
            raise DataError(
                f"{where}: row {i + 1}, column {name!r}: non-finite value {float(values[i])!r}"
            )
        return values
    if kind == "text":
        out = np.empty(len(column))
        for i, cell in enumerate(column.to_pylist()):
            try:
                out[i] = _to_float(cell.strip())
            except _CellError as e:
                raise DataError(f"{where}: row {i + 1}, column {name!r}: {e}") from None
        return out
    raise DataError(f"{where}: column {name!r} has unsupported type {kind}")


def _arrow_target(column, name, where):
    """A Parquet target: a numeric array, or the list of label strings."""
    column = _arrow_plain(column, name, where)
    kind = _arrow_kind(column)
    if kind == "number":
        return column.to_numpy()
    if kind == "decimal":
        return _arrow_feature(column, name, where)
    if kind == "text":
        return [_label_cell(c, name, i + 1, where) for i, c in enumerate(column.to_pylist())]
    raise DataError(f"{where}: target column {name!r} has unsupported type {kind}")


# ---------------------------------------------------------------------------------------
# NPZ
# ---------------------------------------------------------------------------------------


def _open_npz(path, where, max_bytes):
    """np.load of a zip whose declared uncompressed size is within max_bytes."""
    try:
        with zipfile.ZipFile(path) as zf:
            size = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError) as e:
        # NotImplementedError: a corrupt header claiming an unknown zip version or compression
        raise DataError(f"{where}: is not a valid NPZ file: {e}") from None
    if size > max_bytes:
        raise _too_big(where, size, max_bytes)
    return np.load(path, allow_pickle=False)


def _npz_array(npz, key, where) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as e:  # object arrays: numpy refuses to unpickle them
        if "pickle" in str(e).lower():
            raise DataError(
                f"{where}: array {key!r} holds Python objects (pickle); "
                "refused for safety: save numeric or string arrays"
            ) from None
        raise DataError(f"{where}: array {key!r} cannot be read: {e}") from None
    except Exception as e:  # corrupt member (zlib.error, BadZipFile, EOFError, ...)
        raise DataError(f"{where}: array {key!r} cannot be read: {e}") from None


def _npz_X(npz, where) -> np.ndarray:
    if "X" not in npz.files:
        raise DataError(f"{where}: has no array 'X'; it holds {_names_list(npz.files)}")
    X = _npz_array(npz, "X", where)
    if X.ndim != 2:
        raise DataError(f"{where}: X must be 2-D (n, d), got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{where}: X must be numeric, got dtype {X.dtype}")
    if X.shape[0] == 0:
        raise DataError(f"{where}: X has no rows")
    if X.shape[1] == 0:
        raise DataError(f"{where}: X has no feature columns")
    X = X.astype(np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        i, j = bad[0]
        raise DataError(
            f"{where}: X row {i + 1}, column {j + 1}: non-finite value {float(X[i, j])!r}"
        )
    return X


def _npz_names(npz, X, where) -> list[str]:
    if "feature_names" not in npz.files:
        return [f"x{j}" for j in range(X.shape[1])]
    names = _npz_array(npz, "feature_names", where)
    if names.dtype.kind != "U" or names.shape != (X.shape[1],):
        raise DataError(
            f"{where}: feature_names must be {X.shape[1]} strings, got {names.dtype} {names.shape}"
        )
    names = [str(n) for n in names]
    _check_header(names, where)
    return names


def _read_npz(path, where, max_bytes, target, task):
    """(X, y or None, feature names, target name, row label) from an NPZ file."""
    key = "y" if target is None else str(target)
    with _open_npz(path, where, max_bytes) as npz:
        X = _npz_X(npz, where)
        names = _npz_names(npz, X, where)
        if key not in npz.files:
            if target is not None:
                raise DataError(f"{where}: has no array {key!r}; it holds {_names_list(npz.files)}")
            return X, None, names, None, "row"
        y = _npz_array(npz, key, where)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise DataError(f"{where}: {key} must have shape ({X.shape[0]},), got {y.shape}")
    if y.dtype.kind not in "biufU":
        raise DataError(f"{where}: {key} must hold numbers or strings, got dtype {y.dtype}")
    if y.dtype.kind == "U":
        cells = [_label_cell(c, key, i + 1, where) for i, c in enumerate(y.tolist())]
        table = _Table(X, names, key, cells, list(range(1, len(cells) + 1)), "row")
        y = _target_values(table, task, where)
    return X, y, names, key, "row"


def _npz_features(path, where, feature_names, max_bytes):
    with _open_npz(path, where, max_bytes) as npz:
        X = _npz_X(npz, where)
        stored = "feature_names" in npz.files
        names = _npz_names(npz, X, where)
    if feature_names is None:
        return X, names
    if stored:
        idx = _feature_indices(names, feature_names, where)
        return X[:, idx], list(feature_names)
    if X.shape[1] != len(feature_names):
        raise DataError(
            f"{where}: X has {X.shape[1]} columns, but the model has "
            f"{len(feature_names)} features (and the file stores no feature_names)"
        )
    return X, list(feature_names)


# ---------------------------------------------------------------------------------------
# Bundled data sets
# ---------------------------------------------------------------------------------------


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_noise(noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return float(noise)


def _fixed_size(name, n_samples, noise) -> None:
    if n_samples is not None or noise is not None:
        raise DataError(f"data set {name!r} has a fixed size and no noise; n_samples and noise "
                        "are not supported")


def _labelled(X, y, feature_names, name, task, target_name="target") -> Dataset:
    X = np.ascontiguousarray(X, dtype=np.float64)
    if task == "regression":
        return Dataset(X, np.asarray(y, dtype=np.float64), list(feature_names), target_name,
                       task, name)
    y = np.asarray(y)
    return Dataset(X, y, list(feature_names), target_name, task, name,
                   check_classification_target(y, name))


def _from_sklearn(bunch, name, task) -> Dataset:
    y = bunch.target if task == "regression" else bunch.target.astype(np.int64)
    return _labelled(bunch.data, y, [str(f) for f in bunch.feature_names], name, task)


def _bundled(name):
    """scikit-learn's bundled set ``sklearn.datasets.load_<name>()``: fixed size, no noise."""
    def load(seed, n_samples, noise):
        from sklearn import datasets

        _fixed_size(name, n_samples, noise)
        return _from_sklearn(getattr(datasets, f"load_{name}")(), name, _TASK_OF[name])

    return load


def _xor(seed, n_samples, noise):
    """The 4 Boolean points; with n_samples or noise, noisy copies of random corners."""
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    labels = np.array([0, 1, 1, 0])
    if n_samples is None and noise is None:
        X, y = corners, labels
    else:
        n = _check_int(200 if n_samples is None else n_samples, "n_samples", 2)
        sigma = _check_noise(0.1 if noise is None else noise)
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, 4, n)
        X, y = corners[pick] + rng.normal(0.0, sigma, (n, 2)), labels[pick]
    return _labelled(X, y, ["x1", "x2"], "xor", "classification", "label")


def _parity(seed, n_samples, noise):
    _fixed_size("parity", n_samples, noise)
    bits = 4
    X = (np.arange(2**bits)[:, None] >> np.arange(bits - 1, -1, -1)) & 1
    y = X.sum(axis=1) % 2
    return _labelled(X, y, [f"b{j}" for j in range(bits)], "parity", "classification", "parity")


def _sklearn_2d(make, name, seed, n_samples, noise, default_noise, **kwargs):
    n = _check_int(200 if n_samples is None else n_samples, "n_samples", 2)
    sigma = _check_noise(default_noise if noise is None else noise)
    X, y = make(n_samples=n, noise=sigma, random_state=seed, **kwargs)
    return _labelled(X, y.astype(np.int64), ["x1", "x2"], name, "classification", "label")


def _moons(seed, n_samples, noise):
    from sklearn.datasets import make_moons

    return _sklearn_2d(make_moons, "moons", seed, n_samples, noise, 0.1)


def _circles(seed, n_samples, noise):
    from sklearn.datasets import make_circles

    return _sklearn_2d(make_circles, "circles", seed, n_samples, noise, 0.05, factor=0.5)


def _toy(kind):
    def load(seed, n_samples, noise):
        return make_toy_2d(kind, 500 if n_samples is None else n_samples,
                           0.0 if noise is None else noise, seed)

    return load


DATASETS: dict[str, tuple[Callable, str]] = {
    "digits": (_bundled("digits"), "8x8 images of hand-written digits 0-9 (1797 x 64), scikit-learn"),
    "iris": (_bundled("iris"), "Fisher's iris flowers, 3 species (150 x 4), scikit-learn"),
    "wine": (_bundled("wine"), "wine cultivars, 3 classes (178 x 13), scikit-learn"),
    "breast_cancer": (_bundled("breast_cancer"), "Wisconsin breast cancer, 2 classes (569 x 30)"),
    "diabetes": (_bundled("diabetes"), "diabetes disease progression (442 x 10), scikit-learn"),
    "xor": (_xor, "the 4 Boolean XOR points; noisy samples with n_samples/noise"),
    "parity": (_parity, "all 16 bit strings of 4 bits, label = parity"),
    "moons": (_moons, "two interleaving half circles, scikit-learn make_moons"),
    "circles": (_circles, "a small circle inside a large one, scikit-learn make_circles"),
    "circle": (_toy("circle"), "TensorFlow Playground: a disc inside a ring"),
    "gauss": (_toy("gauss"), "TensorFlow Playground: two Gaussian blobs"),
    "spiral": (_toy("spiral"), "TensorFlow Playground: two interleaved spirals"),
    "plane": (_toy("plane"), "TensorFlow Playground: regression on x1 + x2"),
    "multigauss": (_toy("multigauss"), "five Gaussian blobs, one class each"),
}
_TASK_OF = {name: "classification" for name in DATASETS} | {
    "diabetes": "regression",
    "plane": "regression",
}


def list_datasets() -> list[tuple[str, str, str]]:
    """The bundled data sets as (name, task, description) tuples.

    Examples
    --------
    >>> ("iris", "classification") in [(n, t) for n, t, _ in list_datasets()]
    True
    """
    return [(name, _TASK_OF[name], description) for name, (_, description) in DATASETS.items()]


def load_dataset(name, *, seed=0, n_samples=None, noise=None) -> Dataset:
    """Load a bundled data set by name (no network access).

    Parameters
    ----------
    name : str
        See :func:`list_datasets` and ``docs/data.md``.
    seed : int
        Seed of the generated data sets (ignored by the fixed ones).
    n_samples, noise : optional
        For generated data sets; None means the data set's default. Fixed data sets
        (digits, iris, wine, breast_cancer, diabetes, parity) refuse them.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> ds = load_dataset("xor")
    >>> ds.X.tolist(), ds.y.tolist()
    ([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [0, 1, 1, 0])
    """
    if name not in DATASETS:
        known = ", ".join(DATASETS)
        raise DataError(f"unknown data set {name!r}; the bundled data sets are {known}")
    loader, _ = DATASETS[name]
    return loader(seed, n_samples, noise)


def _bundled_with(ds: Dataset, target, task) -> Dataset:
    """A bundled data set, its target re-read for a forced task."""
    if target is not None and target != ds.target_name:
        raise DataError(f"{ds.name}: a bundled data set has the fixed target {ds.target_name!r}")
    if task is None or task == ds.task:
        return ds
    y, task, classes = _resolve_task(ds.y, task, ds.name, ds.target_name)
    return Dataset(ds.X, y, ds.feature_names, ds.target_name, task, ds.name, classes)


# ---------------------------------------------------------------------------------------
# TensorFlow-Playground 2-D data sets (playground.tensorflow.org, src/dataset.ts)
# ---------------------------------------------------------------------------------------

TOY_2D_KINDS = ("circle", "xor", "gauss", "spiral", "plane", "multigauss")


def make_toy_2d(kind, n_samples=500, noise=0.0, seed=0) -> Dataset:
    """A 2-D data set of the TensorFlow Playground, deterministic given ``seed``.

    Parameters
    ----------
    kind : {"circle", "xor", "gauss", "spiral", "plane", "multigauss"}
        As in the Playground's ``dataset.ts``: points in about [-6, 6]^2. Classification
        labels are 0/1 (the Playground's -1/+1), "multigauss" has 5 classes 0..4 and
        "plane" is regression with target (x1 + x2) / 10.
    n_samples : int
    noise : float
        The Playground's noise level (0 to 0.5 in its slider).
    seed : int

    Returns
    -------
    Dataset
        Rows shuffled; feature names ``["x1", "x2"]``.

    Examples
    --------
    >>> ds = make_toy_2d("spiral", n_samples=100, noise=0.1, seed=1)
    >>> ds.X.shape, ds.task, ds.classes
    ((100, 2), 'classification', [0, 1])
    """
    if kind not in _TOY_2D:
        raise ValueError(f"kind must be one of {', '.join(TOY_2D_KINDS)}; got {kind!r}")
    n = _check_int(n_samples, "n_samples", 2)
    noise = _check_noise(noise)
    rng = np.random.default_rng(seed)
    X, y = _TOY_2D[kind](n, noise, rng)
    perm = rng.permutation(n)
    task = "regression" if kind == "plane" else "classification"
    target_name = "y" if kind == "plane" else "label"
    return _labelled(X[perm], y[perm], ["x1", "x2"], kind, task, target_name)


def _polar(r, angle):
    return np.column_stack([r * np.sin(angle), r * np.cos(angle)])


def _toy_circle(n, noise, rng):
    """Inside radius 2.5 is class 1, the ring 3.5..5 class 0; noise moves the label's point."""
    radius, n_in = 5.0, n // 2
    inside = rng.uniform(0, radius * 0.5, n_in)
    r = np.concatenate([inside, rng.uniform(radius * 0.7, radius, n - n_in)])
    X = _polar(r, rng.uniform(0, 2 * np.pi, n))
    shifted = X + rng.uniform(-radius, radius, (n, 2)) * noise
    return X, (np.hypot(*shifted.T) < radius * 0.5).astype(np.int64)


def _toy_xor(n, noise, rng):
    """Quadrants: class 1 where x1 * x2 >= 0, with a 0.3 gap around the axes."""
    X = rng.uniform(-5, 5, (n, 2))
    X += np.where(X > 0, 0.3, -0.3)
    shifted = X + rng.uniform(-5, 5, (n, 2)) * noise
    return X, (shifted[:, 0] * shifted[:, 1] >= 0).astype(np.int64)


def _gauss_variance(noise):
    """The Playground's variance: 0.5 at noise 0, 4 at noise 0.5 (linear)."""
    return 0.5 + 7.0 * noise


def _toy_gauss(n, noise, rng):
    """Class 1 around (2, 2), class 0 around (-2, -2)."""
    std, n_pos = math.sqrt(_gauss_variance(noise)), n // 2
    centres = np.where(np.arange(n)[:, None] < n_pos, 2.0, -2.0)
    X = centres + rng.normal(0.0, std, (n, 2))
    return X, (np.arange(n) < n_pos).astype(np.int64)


def _spiral_arm(m, delta, noise, rng):
    i = np.arange(m)
    r, t = i / m * 5, 1.75 * i / m * 2 * np.pi + delta
    return _polar(r, t) + rng.uniform(-1, 1, (m, 2)) * noise


def _toy_spiral(n, noise, rng):
    """Two spiral arms, class 1 and class 0 (rotated by pi)."""
    n_pos = n // 2
    arms = [_spiral_arm(n_pos, 0.0, noise, rng), _spiral_arm(n - n_pos, np.pi, noise, rng)]
    X = np.vstack(arms)
    return X, (np.arange(n) < n_pos).astype(np.int64)


def _toy_plane(n, noise, rng):
    """Regression: target (x1 + x2) / 10 of the noisy point; x uniform in [-6, 6]^2."""
    X = rng.uniform(-6, 6, (n, 2))
    shifted = X + rng.uniform(-6, 6, (n, 2)) * noise
    return X, shifted.sum(axis=1) / 10


def _toy_multigauss(n, noise, rng, k=5):
    """k Gaussian blobs on a circle of radius 4, class j around centre j."""
    y = np.arange(n) % k
    angle = 2 * np.pi * y / k
    centres = _polar(np.full(n, 4.0), angle)
    return centres + rng.normal(0.0, math.sqrt(_gauss_variance(noise)) / 2, (n, 2)), y


_TOY_2D = {
    "circle": _toy_circle,
    "xor": _toy_xor,
    "gauss": _toy_gauss,
    "spiral": _toy_spiral,
    "plane": _toy_plane,
    "multigauss": _toy_multigauss,
}
