"""Errors meant for people: each names the input at fault and what would work."""

from __future__ import annotations

import errno
import os


class KinemaError(Exception):
    """Base class; the CLI prints the message in one line and exits with `exit_code`."""

    exit_code = 2


def one_line(text: str) -> str:
    """`text` as a single printable line: bytes echoed from a damaged file (newlines, control
    characters) are written as escapes, so an error message is always exactly one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


class InputError(KinemaError):
    """A file, size, duration or option that kinema cannot use."""


# The words every full-disk message carries, so `disk_full` can tell one from the text alone.
DISK_FULL, QUOTA_USED_UP = "the disk is full", "the disk quota is used up"
# What an operating-system error means for the person who named the file, and what would work instead.
_FILE_HINTS = {
    errno.ENOSPC: f"{DISK_FULL}; free some space or write somewhere else",
    errno.EDQUOT: f"{QUOTA_USED_UP}; free some space or write somewhere else",
    errno.EACCES: "permission denied; choose a place you can write to (or a file you can read)",
    errno.EPERM: "permission denied; choose a place you can write to (or a file you can read)",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter one",
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder; give a file name",
    errno.ENOTDIR: "part of the path is a file where a folder is needed",
    errno.EEXIST: "already exists as a file where a folder is needed",
}


def file_error(exc: OSError, path: str | os.PathLike | None = None) -> InputError:
    """An OSError as an InputError naming the file (`path`, else the error's own) and what would work."""
    where = path if path is not None else exc.filename
    hint = _FILE_HINTS.get(exc.errno, exc.strerror or str(exc))
    return InputError(f"{where}: {hint}" if where is not None else hint)


class ConfigError(KinemaError):
    """A configuration file or value that is missing or invalid."""


class CheckpointError(KinemaError):
    """A checkpoint folder that is missing, incomplete or incompatible."""


class RefusedError(KinemaError):
    """A prompt refused by the safety policy."""

    exit_code = 3

    def __init__(self, category: str, reason: str):
        super().__init__(f"prompt refused ({category}): {reason}")
        self.category = category
        self.reason = reason


class CancelledError(KinemaError):
    """A generation cancelled by its caller between steps."""

    exit_code = 130


def disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception it was raised from, is a full disk or quota: an OS error, kinema's
    own message for one (`file_error`), or SQLite's "database or disk is full" (which SQLAlchemy wraps)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if any(words in text for words in ("database or disk is full", DISK_FULL, QUOTA_USED_UP)):
            return True  # SQLite's words, or kinema's own
        exc, seen = exc.__cause__ or exc.__context__ or getattr(exc, "orig", None), seen + 1
    return False
