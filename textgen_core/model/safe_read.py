"""Reading files that may come from anywhere without hanging or running out of memory.

A path can name a FIFO (reading it waits for a writer that may never come), a device (/dev/zero
never ends), a socket, or a sparse file of a terabyte. Only regular files are read, and only up to
a size the caller names, checked from the file's size before a byte is read. The check is made on
the path and again on what was opened (with O_NONBLOCK, so that opening a FIFO put there meanwhile
returns at once). A `.npy` array's header (shape and type) is read before its data, so that the
data's size is known, and checked, before it is read.
"""
from __future__ import annotations

import io
import math
import os
import re
import stat
import struct
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

MB = 2**20
# The header numpy writes for a plain array of numbers (`{'descr': '<f4', 'fortran_order': False,
# 'shape': (256, 768), }`, blanks, a line break), read here without numpy's `ast.literal_eval`: 40 µs
# a header, and a model's load reads fifty (its weights and its corpus n-gram's arrays).
_PLAIN_HEADER = re.compile(rb"\{'descr': '([<>|][biuf][1248])', 'fortran_order': (True|False), "
                           rb"'shape': \(((?:\d+, )*\d+,?|)\), \} *\n")
_HEADER_LENGTH = {(1, 0): struct.Struct("<H"), (2, 0): struct.Struct("<I")}
MAX_NPY_HEADER_BYTES = 10000                   # numpy's own bound (`max_header_size`)


class RefusedFile(ValueError):
    """A file that is not read; the message names it and says why (`not_regular`: it is no regular file)."""

    def __init__(self, message: str, not_regular: bool = False) -> None:
        super().__init__(message)
        self.not_regular = not_regular


def size_text(size: int) -> str:
    """A size as a person reads it: "512 bytes", "16 MB", "1.5 GB"."""
    if size < 10 * 1024:
        return f"{size:,} bytes"
    for unit, scale in (("GB", 2**30), ("MB", MB), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:,} bytes"


def _checked_size(info: os.stat_result, name: str, limit: int | None, why: str) -> int:
    """The size of a regular file; RefusedFile for anything else, or for a file over `limit`."""
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
        raise RefusedFile(f"{name}: is {kind}, not a regular file", not_regular=True)
    if limit is not None and info.st_size > limit:
        raise RefusedFile(f"{name}: {size_text(info.st_size)}, over the {size_text(limit)} {why}".rstrip())
    return info.st_size


def regular_file_size(path: str | os.PathLike, limit: int | None = None, name: str | None = None,
                      why: str = "") -> int:
    """The size of the regular file at `path` (symbolic links followed), without opening it.
    RefusedFile for a FIFO, device, socket or folder, and for a file over `limit` (the message ends
    with `why`, e.g. "that a model's config.json may hold"); FileNotFoundError where nothing is."""
    return _checked_size(os.stat(path), str(path) if name is None else name, limit, why)


def open_regular(path: str | os.PathLike, limit: int | None = None, name: str | None = None,
                 why: str = "") -> BinaryIO:
    """The regular file at `path`, open for reading in binary; refused as `regular_file_size` says."""
    regular_file_size(path, limit, name, why)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        _checked_size(os.fstat(fd), str(path) if name is None else name, limit, why)    # what was opened
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int, name: str | None = None, why: str = "") -> bytes:
    """All the bytes of the regular file at `path`, at most `limit` of them (a file that grows past
    `limit` while it is read is refused too)."""
    with open_regular(path, limit, name, why) as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(size + 1)                              # a buffer of the file's size, not the limit's
        if size < len(data) <= limit:
            data += f.read(limit + 1 - len(data))            # it grew meanwhile
    if len(data) > limit:
        raise RefusedFile(f"{str(path) if name is None else name}: over the {size_text(limit)} {why}".rstrip())
    return data


def read_npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, type and data size in bytes of the `.npy` array `stream` is at the start
    of, read from its header; the stream is left at the data. ValueError for what is not a plain array
    of numbers (objects, which only unpickling could read, included)."""
    version = npy_format.read_magic(stream)
    length_format = _HEADER_LENGTH.get(version)
    if length_format is None:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not read")
    length_bytes = stream.read(length_format.size)
    if len(length_bytes) != length_format.size:
        raise ValueError("the .npy header is cut short")
    (length,) = length_format.unpack(length_bytes)
    if length > MAX_NPY_HEADER_BYTES:
        raise ValueError(f"a .npy header of {length:,} bytes (numpy writes at most {MAX_NPY_HEADER_BYTES:,})")
    header = stream.read(length)
    if len(header) != length:
        raise ValueError("the .npy header is cut short")
    plain = _PLAIN_HEADER.fullmatch(header)
    if plain is not None:
        descr, fortran_text, shape_text = plain.groups()
        dtype, fortran = np.dtype(descr.decode()), fortran_text == b"True"
        shape = tuple(int(size) for size in shape_text.split(b",") if size.strip())
    else:                                   # any other header is numpy's to read
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = read_header(io.BytesIO(length_bytes + header))
    if any(not isinstance(size, int) or size < 0 for size in shape):
        raise ValueError(f"a shape of {shape}, not sizes")
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise ValueError(f"holds {dtype}, not plain numbers")
    return tuple(shape), bool(fortran), dtype, math.prod(shape) * dtype.itemsize
