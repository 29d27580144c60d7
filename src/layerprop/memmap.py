"""Data larger than memory: read minibatches from a memory-mapped ``.npy`` file.

``open_npy(path)`` returns the array of ``np.load(path, mmap_mode="r")`` as a :class:`PagedMemmap`,
a ``np.memmap`` that behaves the same everywhere but keeps the resident memory bounded. The pages
of a memory-mapped file that a process has touched count in its resident set (RSS) until the
kernel wants the memory back, and a kernel may map far more than was touched (large folios and
fault-around: one fancy-indexed batch of 1024 random rows mapped a whole 620 MB file here), so
an epoch over a 3 GB file would leave 3 GB resident. Hence:

- ``X[rows]`` (an integer array or a slice along the first axis) reads just those rows with
  ``os.preadv`` into a new in-memory array, sorted and coalesced into runs: nothing is mapped;
- any other access goes through the mapping, and after every ``release_bytes`` handed out the
  mapped pages are dropped from RSS (``madvise(MADV_DONTNEED)``); they stay in the page cache,
  so the next access is a minor fault, not a disk read.

Example::

    X = lp.memmap.open_npy("X.npy")     # nothing read yet
    batch = X[rows]                    # reads (and copies) only these rows
"""

from __future__ import annotations

import mmap
import os
import weakref

import numpy as np

RELEASE_BYTES = 64 << 20


class _Pager:
    """Counts the bytes read through a mapping and drops its pages after ``limit`` bytes."""

    def __init__(self, mm, limit):
        self.mm, self.limit, self.read = mm, int(limit), 0

    def note(self, nbytes):
        self.read += nbytes
        if self.read >= self.limit:
            self.release()

    def release(self):
        self.read = 0
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if self.mm is not None and advice is not None and hasattr(self.mm, "madvise"):
            try:
                self.mm.madvise(advice)
            except (OSError, ValueError):  # closed or not supported: only a memory hint
                pass


class _RowFile:
    """Reads rows of a C-ordered ``.npy`` body straight from the file (``os.preadv``)."""

    def __init__(self, path, offset, shape, dtype):
        self.fd = os.open(path, os.O_RDONLY)
        self.offset, self.shape, self.dtype = offset, shape, dtype
        self.row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        weakref.finalize(self, os.close, self.fd)

    def rows(self, idx):
        """A new array holding rows ``idx`` (1-D integers) of the file's array."""
        n = self.shape[0]
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        idx = np.where(idx < 0, idx + n, idx)
        order = np.argsort(idx, kind="stable")
        srt = idx[order]
        buf = np.empty((len(idx),) + tuple(self.shape[1:]), self.dtype)
        if not len(idx):
            return buf
        cuts = np.flatnonzero(np.diff(srt) != 1) + 1
        for s, e in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(srt)].tolist()):
            self._read(buf[s:e], self.offset + int(srt[s]) * self.row_bytes)
        if np.any(order[1:] < order[:-1]):
            out = np.empty_like(buf)
            out[order] = buf
            return out
        return buf

    def _read(self, dest, pos):
        view = memoryview(dest.reshape(-1)).cast("B")
        while len(view):
            got = os.preadv(self.fd, [view], pos)
            if got <= 0:
                raise OSError(f"unexpected end of file reading rows at byte {pos}")
            view, pos = view[got:], pos + got


class PagedMemmap(np.memmap):
    """A read-only ``np.memmap`` whose row reads bypass the mapping and whose mapped pages are
    dropped from RSS every so many bytes read."""

    def __array_finalize__(self, obj):
        super().__array_finalize__(obj)
        self._pager = getattr(obj, "_pager", None)
        self._rowfile = None  # only the array open_npy returned reads rows from the file

    def __getitem__(self, index):
        rf = getattr(self, "_rowfile", None)
        if rf is not None:
            if isinstance(index, slice) and index.step in (None, 1):
                start, stop, _ = index.indices(self.shape[0])
                return rf.rows(np.arange(start, max(start, stop)))
            if isinstance(index, (list, np.ndarray)) and np.asarray(index).ndim == 1 \
                    and np.asarray(index).dtype.kind in "iu":
                return rf.rows(index)
        res = super().__getitem__(index)
        if isinstance(res, PagedMemmap) and res._mmap is None:  # a copy (fancy index): a plain array
            res = res.view(np.ndarray)
        pager = getattr(self, "_pager", None)
        if pager is not None and isinstance(res, np.ndarray) and res.ndim:
            pager.note(res.nbytes)
        return res

    def release_pages(self):
        """Drop the pages read so far from this process's resident memory (they stay cached)."""
        if self._pager is not None:
            self._pager.release()


def open_npy(path, release_bytes=RELEASE_BYTES) -> PagedMemmap:
    """The array in the ``.npy`` file at ``path``, memory-mapped read-only (nothing is read yet).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` file (``np.save``); any shape, any dtype.
    release_bytes : int
        Resident-memory budget: after this many bytes handed out, the mapped pages are released.

    Returns
    -------
    PagedMemmap
        An ``np.ndarray`` subclass; ``X[rows]`` is a plain in-memory copy of those rows.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    if int(release_bytes) <= 0:
        raise ValueError(f"release_bytes must be > 0; got {release_bytes!r}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"path={os.fspath(path)!r} is not a readable .npy file: {exc}") from exc
    if not isinstance(arr, np.memmap):
        raise ValueError(f"path={os.fspath(path)!r} could not be memory-mapped (an .npz or empty file?)")
    out = arr.view(PagedMemmap)
    out._pager = _Pager(arr._mmap, release_bytes)
    if arr.flags.c_contiguous and arr.ndim >= 1 and arr.size:
        out._rowfile = _RowFile(os.fspath(path), arr.offset, arr.shape, arr.dtype)
    return out


def release_pages(X) -> None:
    """Drop the mapped pages of ``X`` from resident memory if it came from :func:`open_npy`."""
    release = getattr(X, "release_pages", None)
    if release is not None:
        release()


CHUNK_BYTES = 16 << 20  # rows handed out at a time by row_chunks


def as_paged(X, release_bytes=RELEASE_BYTES):
    """``X`` (an ``np.memmap``) as a :class:`PagedMemmap` over the same mapping: row reads go
    straight to the file where that is exact (a read-only or shared mapping of a whole C-ordered
    array; never a copy-on-write one, whose changes the file does not hold), and mapped pages are
    dropped every ``release_bytes``. A :class:`PagedMemmap` or anything else is returned as it is."""
    if isinstance(X, PagedMemmap) or not isinstance(X, np.memmap):
        return X
    mm = getattr(X, "_mmap", None)
    out = X.view(PagedMemmap)
    out._pager = _Pager(mm, release_bytes)
    whole = mm is not None and X.base is mm and X.ndim >= 1 and X.size and X.flags.c_contiguous
    if whole and getattr(X, "mode", "c") in ("r", "r+", "w+") and getattr(X, "filename", None):
        out._rowfile = _RowFile(X.filename, X.offset, X.shape, X.dtype)
    return out


def row_chunks(X, chunk_bytes=None):
    """``X[s:e]`` for consecutive runs of rows of about ``chunk_bytes`` each, as in-memory arrays
    where ``X`` is a :class:`PagedMemmap` that reads rows from its file; the mapped pages of a
    memmap are released after each run, so a pass over the whole array keeps RSS bounded."""
    n, chunk_bytes = X.shape[0], CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    row = max(1, X.dtype.itemsize * int(np.prod(X.shape[1:], dtype=np.int64)))
    step = max(1, chunk_bytes // row)
    for s in range(0, n, step):
        yield X[s:s + step]
        if isinstance(X, np.memmap):
            release_pages(X)
