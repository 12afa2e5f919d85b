"""User-facing errors: the CLI prints these as one line, never a traceback."""

from __future__ import annotations


class RagError(Exception):
    """Base class for errors a user can act on; the message says what to do."""


class ConfigError(RagError):
    """A setting, option or argument is invalid."""


class ModelNotFoundError(RagError):
    """A model could not be found on disk (nothing is ever downloaded)."""


class IndexFormatError(RagError):
    """The index directory was written by an incompatible version or embedder."""


class IndexLockedError(RagError):
    """Another process is writing the index."""


class WatchError(RagError):
    """Watching a folder for changes failed (the OS refused a watch, or it broke)."""


class IndexWriteError(RagError):
    """Writing to the index directory failed (read-only, I/O error); what was written is kept."""


class DiskFullError(IndexWriteError):
    """The index's disk has no room for what was being written; the message says how much."""


class LoaderError(RagError):
    """One input file could not be read; the message names the file and the problem."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class FileSkipped(LoaderError):
    """A file was passed over on purpose (unsupported type); not a failure."""


class DatasetError(RagError):
    """An evaluation dataset file is missing or malformed; the message names file and line."""

    def __init__(self, path: str, problem: str, line: int | None = None) -> None:
        where = path if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class ModelIntegrityError(RagError):
    """A model file exists but is not the pinned one (wrong size or hash)."""


class ModelLoadError(RagError):
    """llama.cpp could not load a GGUF file that passed the format and pin checks."""


class ContextOverflowError(RagError):
    """A prompt plus the tokens asked for would not fit the model's context window.

    Not a ConfigError: it depends on the question and the passages, so it is a runtime failure
    (exit code 1), not a usage error.
    """


class IndexNotFoundError(RagError):
    """There is no index at the given directory yet."""


class DocumentNotIndexedError(ConfigError):
    """A file named for a whole-document question is not in the index; `path` is the file."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class ServerError(RagError):
    """An OpenAI-compatible server is down, refused a request or answered it wrongly; the
    message names the URL and what to do."""


class DistributedError(RagError):
    """A Ray cluster could not be reached, or a distributed ingest could not finish on it;
    what was written before is kept."""
