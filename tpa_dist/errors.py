"""Named exceptions: every failure a user can cause says which file/tensor and what to do."""

from __future__ import annotations

import errno


class TpaError(Exception):
    """Base class of every error tpa-dist raises on purpose."""


class HeaderError(TpaError):
    """A safetensors header is malformed, truncated or inconsistent with the file."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: invalid safetensors header: {problem}")


class ModelFolderError(TpaError):
    """A model folder (or its shard index) cannot be read as a safetensors checkpoint."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class UnsupportedFormatError(ModelFolderError):
    """The checkpoint exists only in a format we refuse to load (pickle-based)."""


class TensorDataError(TpaError):
    """A tensor's values cannot be analyzed (NaN/Inf, unknown dtype, short read)."""

    def __init__(self, tensor: str, problem: str) -> None:
        self.tensor = tensor
        self.problem = problem
        super().__init__(f"tensor {tensor}: {problem}")


class JobError(TpaError):
    """A job setting has the wrong type or is out of range (from a job file, a flag or the Python API)."""


class JobFileError(JobError):
    """A job file (TOML) is missing, malformed or names unknown settings."""


class UnknownModelSpecError(TpaError):
    """A --models entry is neither a local folder, a synth: preset nor a Hub id."""


class GatedModelError(UnknownModelSpecError):
    """A gated Hub repository whose licence the token has not accepted (or no token)."""


class ModelNotFoundError(UnknownModelSpecError):
    """A Hub repository or revision that does not exist (or is private to the token)."""


class UnknownPresetError(UnknownModelSpecError):
    """A synth:PRESET names no built-in synthetic preset."""


class DownloadError(TpaError):
    """A Hub download failed (network, server), after retrying; what was stored is kept."""


class DiskSpaceError(TpaError):
    """Not enough free disk for what a download needs."""


class StoreError(TpaError):
    """The DuckDB database cannot be opened or written."""


class StoreLockedError(StoreError):
    """Another process holds DuckDB's single-writer lock on the database file."""


class RayConnectError(TpaError):
    """The Ray cluster named by --address (or RAY_ADDRESS) cannot be reached."""


class ClusterLostError(TpaError):
    """The Ray cluster a submit joined lost its head mid-run; what finished is stored (exit 1: run again)."""


def unknown_preset_message(name: str, known: object) -> str:
    """`unknown synthetic preset 'tiny-lama' (did you mean 'tiny-llama'?); known: …`."""
    import difflib

    names = list(known)
    close = difflib.get_close_matches(name, names, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown synthetic preset {name!r}{guess}; known: {', '.join(names)}"


#: a model's failure, grouped in the end-of-run summary: (error class, the reason's words), first match wins
_REASONS = (
    (GatedModelError, "gated (accept the licence on the Hub and set HF_TOKEN)"),
    (ModelNotFoundError, "not found or private (check the id; HF_TOKEN for private ones)"),
    (UnsupportedFormatError, "only pickle weights or no safetensors (never unpickled)"),
    (DiskSpaceError, "not enough disk"),
    (DownloadError, "download failed (run again to resume)"),
    ((HeaderError, ModelFolderError, TensorDataError), "broken checkpoint (header, index or config)"),
    (UnknownModelSpecError, "not a model spec"),
)


def failure_reason(exc: BaseException) -> str:
    """The reason a model failed, in the words the end-of-run summary groups failures by."""
    for kind, words in _REASONS:
        if isinstance(exc, kind):
            return words
    return "other (see each model's message)"


class ReportError(TpaError):
    """A report section file is malformed or its query failed."""


_MEMORY_WORDS = (
    "can't start new thread",
    "failed to map segment",
    "cannot allocate memory",
    "bad_alloc",
    "out of memory",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is the machine (or a memory limit) refusing memory, whatever shape it took: MemoryError, a thread
    that cannot start (its stack cannot be mapped), ENOMEM, a C++ bad_alloc, an allocator's own message."""
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    text = str(exc).lower()
    return any(word in text for word in _MEMORY_WORDS)


def describe(exc: BaseException) -> str:
    """A failure's message: ours as they are, running out of memory as such, anything else with its type."""
    if isinstance(exc, TpaError):
        return str(exc)
    if is_out_of_memory(exc):
        return f"out of memory ({type(exc).__name__}: {exc}): give the driver more memory (a memory limit, ulimit -v?)"
    return f"{type(exc).__name__}: {exc}"
