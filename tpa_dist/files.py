"""Files, read and written carefully. Reading: only regular files — a FIFO, device or folder where a config, index,
tokenizer or shard should be is refused before it can block a read — and every small file with a size limit.
Writing: whole or not at all (a temporary file renamed into place), under names that are never paths."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path
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


MAX_NAME = 100  # characters of a file or folder name made from a model name


def name_for_path(name: str) -> str:
    """A file or folder name for `name` (a model id): letters, digits, `.`, `_` and `-` only, never `.` or `..`, never
    hidden, at most MAX_NAME characters. `org/name` becomes `org--name` and `synth:p` `synth-p`; any other change
    (a separator elsewhere, a leading dot, other characters, length) adds a short hash of the original, so that
    distinct model ids keep distinct folders."""
    plain = name.replace("/", "--").replace(":", "-")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", plain).strip("-.")[:MAX_NAME] or "model"
    if safe != plain:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        safe = f"{safe[: MAX_NAME - 9]}-{digest}"
    return safe


class OutputPathError(ValueError):
    """A file the user asked to write cannot be written there (not a regular file, exists without --force, a
    folder that cannot be made): the message is the whole error line."""


def prepare_output(path: str | os.PathLike[str], overwrite: bool, create: bool = True) -> Path:
    """The rules of every file a command writes where the user asked (export, plan): only a regular file is ever
    replaced (never a device, FIFO or folder), and only with `overwrite` (--force); a missing folder is created
    (`create`; or later, by `make_folder`, once the caller knows it will write)."""
    target = Path(path)
    if target.is_symlink() or target.exists():
        if not (target.is_file() or target.is_symlink()):
            raise OutputPathError(f"{target} exists and is not a regular file")
        if not overwrite:
            raise OutputPathError(f"{target} exists (--force overwrites it)")
    if create:
        make_folder(target)
    return target


def make_folder(target: Path) -> None:
    """The folder `target` goes in, created if missing (one OutputPathError line if it cannot be)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{target.parent}: cannot create the folder: {exc.strerror or exc}") from None


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write `data` to `path` whole or not at all: a temporary file beside it, flushed, then renamed into place (a
    full disk leaves the old file, or none — never a truncated one)."""
    target = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


__all__ = [
    "NotRegularFileError",
    "OutputPathError",
    "make_folder",
    "prepare_output",
    "is_regular",
    "name_for_path",
    "open_regular",
    "read_bytes_limited",
    "read_text_limited",
    "write_atomic",
]
