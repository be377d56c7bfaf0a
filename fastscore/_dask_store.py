"""The iterates of :func:`fastscore.distributed.denoise_dask` on disk: an array stored as
one ``.npy`` file per chunk in a directory, read and written by the block tasks of any
worker process.

Layout of an array ``<directory>/``: ``chunks.json`` (shape, dtype, chunk sizes along each
axis) and one file ``<i>.<j>.<k>.npy`` per chunk (its block index), a plain NumPy file
(``np.load`` reads it), C order, no compression. A chunk is written whole by one task,
into a temporary file renamed into place: a reader never sees a partial chunk, and a task
run twice (a worker lost and its task rerun) writes the same file again.

A read of any box — a chunk's window with its halo — reads, from each chunk file the box
overlaps, only the rows of the box, a few rows at a time (a buffer of at most 1 MiB),
straight into the result: its memory is the box itself. (A Zarr read of the same box
decodes every overlapped chunk whole, and holds the stored bytes and the decoded chunk
besides the box: ≈ 3 chunk sizes of transient memory for a 2-pixel slab.)
"""

import itertools
import json
import os
import shutil
import uuid

import numpy as np

__all__ = []

_BUFFER = 1 << 20          # bytes of one read or write of rows


class ChunkFiles:
    """An array of `shape` and `dtype` with the chunk grid `chunks` (the sizes along each
    axis, as ``dask.array.Array.chunks``; at least 2 dimensions) in `path`.

    ``store[box]`` (slices with step 1) reads a box; ``store[chunk_region] = value`` writes
    exactly one chunk (as :func:`dask.array.store` does); it pickles as its description
    (path, shape, chunks, dtype), so it can be passed to tasks and to
    :func:`dask.array.from_array`.
    """

    def __init__(self, path, shape, chunks, dtype):
        self.path = os.fspath(path)
        self.shape = tuple(int(n) for n in shape)
        self.chunks = tuple(tuple(int(c) for c in sizes) for sizes in chunks)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        if self.ndim < 2 or tuple(sum(c) for c in self.chunks) != self.shape:
            raise ValueError(f"chunks {self.chunks} do not tile shape {self.shape} "
                             "(at least 2 dimensions)")
        self._bounds = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in self.chunks]

    @classmethod
    def create(cls, path, shape, chunks, dtype):
        """An empty array in a new directory `path` (an existing one is replaced)."""
        store = cls(path, shape, chunks, dtype)
        shutil.rmtree(store.path, ignore_errors=True)
        os.makedirs(store.path)
        layout = {"shape": store.shape, "chunks": store.chunks,
                  "dtype": np.lib.format.dtype_to_descr(store.dtype)}
        _replace_with(os.path.join(store.path, "chunks.json"),
                      lambda f: f.write(json.dumps(layout).encode()))
        return store

    @classmethod
    def open(cls, path):
        """The array stored in the directory `path`."""
        with open(os.path.join(os.fspath(path), "chunks.json"), "rb") as f:
            layout = json.loads(f.read())
        return cls(path, layout["shape"], layout["chunks"],
                   np.lib.format.descr_to_dtype(layout["dtype"]))

    def chunk_file(self, block):
        """The file of the chunk with block index `block`."""
        return os.path.join(self.path, ".".join(str(int(b)) for b in block) + ".npy")

    def chunk_shape(self, block):
        return tuple(self.chunks[a][b] for a, b in enumerate(block))

    def write_chunk(self, block, value):
        """Store `value` (any layout, the chunk's shape) as the chunk `block`, atomically,
        a few rows at a time (no contiguous copy of the whole chunk)."""
        shape = self.chunk_shape(block)
        if tuple(value.shape) != shape:
            raise ValueError(f"chunk {tuple(block)} has shape {shape}; got {value.shape}")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": shape}

        def write(f):
            np.lib.format.write_array_header_1_0(f, header)
            for rows in _row_runs(shape[:-2], (0, shape[-2]), shape[-1] * self.dtype.itemsize):
                f.write(np.ascontiguousarray(value[rows], dtype=self.dtype))
        _replace_with(self.chunk_file(block), write)

    def read(self, starts, stops, out=None):
        """The box ``[starts, stops)`` (inside the array), into `out` if given."""
        if out is None:
            out = np.empty(tuple(b - a for a, b in zip(starts, stops)), dtype=self.dtype)
        blocks = [range(int(np.searchsorted(e, a, "right")) - 1,
                        int(np.searchsorted(e, b, "left")))
                  for e, a, b in zip(self._bounds, starts, stops)]
        for block in itertools.product(*blocks):
            first = [max(a, int(e[i])) for e, a, i in zip(self._bounds, starts, block)]
            last = [min(b, int(e[i + 1])) for e, b, i in zip(self._bounds, stops, block)]
            local = [(f - int(e[i]), g - int(e[i])) for e, f, g, i in
                     zip(self._bounds, first, last, block)]
            self._read_part(block, local, out[tuple(slice(f - a, g - a) for f, g, a in
                                                    zip(first, last, starts))])
        return out

    def read_indexed(self, indices):
        """``array[np.ix_(*indices)]`` with ``-1`` read as 0: the window of a chunk with
        its padding (reflected, wrapped or zero) read straight from the files, one box per
        run of consecutive indices."""
        out = np.empty(tuple(len(i) for i in indices), dtype=self.dtype)
        for runs in itertools.product(*[_runs(np.asarray(i)) for i in indices]):
            part = out[tuple(slice(j, j + b - a) for a, b, j in runs)]
            if any(a < 0 for a, _, _ in runs):
                part[...] = 0
            else:
                self.read([a for a, _, _ in runs], [b for _, b, _ in runs], part)
        return out

    def _read_part(self, block, local, dest):
        """The box `local` ((start, stop) per axis) of chunk `block` into `dest`."""
        shape = self.chunk_shape(block)
        path = self.chunk_file(block)
        with open(path, "rb", buffering=0) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                           np.lib.format.read_array_header_2_0)
            stored, fortran, dtype = read_header(f)
            if tuple(stored) != shape or fortran or dtype != self.dtype:
                raise ValueError(f"{path} holds {dtype} {tuple(stored)} (fortran order "
                                 f"{fortran}); expected {self.dtype} {shape}")
            offset = f.tell()
            row = shape[-1] * self.dtype.itemsize
            (c0, c1), lead = local[-1], [a for a, _ in local[:-2]]
            buffer = None
            for rows in _row_runs([b - a for a, b in local[:-2]], local[-2], row):
                index = [i + a for i, a in zip(rows[:-1], lead)]
                plane = int(np.ravel_multi_index(index, shape[:-2])) if index else 0
                r = rows[-1]
                if buffer is None:
                    buffer = np.empty((r.stop - r.start) * shape[-1], dtype=self.dtype)
                part = buffer[:(r.stop - r.start) * shape[-1]]
                f.seek(offset + (plane * shape[-2] + r.start) * row)
                _read_exactly(f, part, path)
                dest[rows[:-1] + (slice(r.start - local[-2][0], r.stop - local[-2][0]),)] = \
                    part.reshape(-1, shape[-1])[:, c0:c1]

    def __getitem__(self, key):
        starts, stops = self._box(key)
        return self.read(starts, stops)

    def __setitem__(self, key, value):
        starts, stops = self._box(key)
        block = []
        for e, a, b in zip(self._bounds, starts, stops):
            i = int(np.searchsorted(e, a))
            if i >= len(e) - 1 or e[i] != a or e[i + 1] != b:
                raise ValueError(f"a write must cover one chunk of {self.chunks}; got "
                                 f"{tuple(zip(starts, stops))}")
            block.append(i)
        self.write_chunk(block, np.asarray(value))

    def _box(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim or not all(isinstance(k, slice) for k in key):
            raise IndexError(f"expected {self.ndim} slices; got {key}")
        ranges = [k.indices(n) for k, n in zip(key, self.shape)]
        if any(step != 1 for _, _, step in ranges):
            raise IndexError(f"only slices with step 1 are read; got {key}")
        return [a for a, _, _ in ranges], [max(a, b) for a, b, _ in ranges]


def _row_runs(leading, rows, row_bytes):
    """Index tuples ``(i, j, ..., slice(r0, r1))`` over the leading axes of extent
    `leading` and the rows ``[rows[0], rows[1])`` in runs of at most `_BUFFER` bytes
    (one row at least), in C order."""
    step = max(1, _BUFFER // max(row_bytes, 1))
    for index in np.ndindex(*leading):
        for r in range(rows[0], rows[1], step):
            yield tuple(int(i) for i in index) + (slice(r, min(r + step, rows[1])),)


def _runs(index):
    """`index` as runs ``(start, stop, offset)`` of consecutive values (a run of −1 is a
    run of zeros, ``(-1, -1 + length, offset)``)."""
    if not len(index):
        return []
    zero = index < 0
    joined = np.where(zero[1:], zero[:-1], ~zero[:-1] & (np.diff(index) == 1))
    breaks = np.flatnonzero(~joined) + 1
    edges = np.concatenate([[0], breaks, [len(index)]])
    return [(int(index[j]), int(index[j]) + int(k - j), int(j))
            for j, k in zip(edges[:-1], edges[1:])]


def _read_exactly(f, array, path):
    view = memoryview(array).cast("B")
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise OSError(f"{path} is truncated")
        done += got


def _replace_with(path, write):
    """Write a file through ``write(f)`` into a temporary name, then rename it into place."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
