"""Exceptions: one class per rn_status, all subclasses of :class:`Error`.

Each carries the library's one-line message (``rn_last_error()``) as its
text, and the status as ``.status`` (an int) and ``.status_name``
(e.g. ``"RN_ERR_ARG"``). Where a built-in exception means the same thing the
class derives from it too, so ``except ValueError`` catches a bad argument.
"""

from __future__ import annotations

_NAMES = {0: "RN_OK", 1: "RN_ERR_NOMEM", 2: "RN_ERR_IO", 3: "RN_ERR_FORMAT", 4: "RN_ERR_ARG",
          5: "RN_ERR_NUMERIC", 6: "RN_ERR_INTERRUPTED"}


class Error(Exception):
    """A failure reported by libretnet (or by the binding's own checks)."""

    status: int = -1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def status_name(self) -> str:
        return _NAMES.get(self.status, "unknown")

    def __str__(self) -> str:
        return self.message


class NoMemoryError(Error, MemoryError):
    """RN_ERR_NOMEM: allocation failed or a size too large."""
    status = 1


class FileError(Error, OSError):
    """RN_ERR_IO: open, read, write, fsync or rename failed."""
    status = 2

    def __init__(self, message: str, status: int | None = None) -> None:
        Error.__init__(self, message, status)

    def __str__(self) -> str:
        return self.message


class FormatError(Error):
    """RN_ERR_FORMAT: a malformed or inconsistent file."""
    status = 3


class ArgumentError(Error, ValueError):
    """RN_ERR_ARG: an invalid argument or configuration."""
    status = 4


class NumericError(Error, ArithmeticError):
    """RN_ERR_NUMERIC: NaN or Inf where a finite value was required."""
    status = 5


class Interrupted(Error):
    """RN_ERR_INTERRUPTED: stopped on request."""
    status = 6


_CLASSES = {1: NoMemoryError, 2: FileError, 3: FormatError, 4: ArgumentError, 5: NumericError, 6: Interrupted}


def error_class(status: int) -> type:
    """The exception class of an rn_status value."""
    return _CLASSES.get(status, Error)


def raise_status(status: int, message: str) -> None:
    """Raises the class of status with message."""
    cls = error_class(status)
    raise cls(message or _NAMES.get(status, f"rn_status {status}"), status)
