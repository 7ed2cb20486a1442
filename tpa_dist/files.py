"""Open only regular files: a FIFO, device or folder where a config, index, tokenizer or shard should be is refused
before it can block a read, and every small file is read with a size limit."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO


class NotRegularFileError(OSError):
    """The path exists but is not a regular file (a FIFO, device, socket or folder)."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open `path` for binary reading, refusing anything but a regular file without ever blocking on it: the
    type is checked before opening (O_NONBLOCK guards the race) and again on the open descriptor."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(f"{path} is {_kind(st.st_mode)}, not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"{path} is {_kind(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (ValueError above it)."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise ValueError(f"{size} bytes, larger than the {limit}-byte limit")
        return fh.read(limit + 1)


def read_text_limited(path: str | os.PathLike[str], limit: int) -> str:
    """UTF-8 text of a regular file of at most `limit` bytes (UnicodeDecodeError / ValueError / OSError)."""
    return read_bytes_limited(path, limit).decode("utf-8")


def is_regular(path: str | os.PathLike[str]) -> bool:
    """Whether `path` exists and is a regular file (following symlinks)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


__all__ = ["NotRegularFileError", "is_regular", "open_regular", "read_bytes_limited", "read_text_limited"]
