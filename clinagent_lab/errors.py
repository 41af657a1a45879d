"""One exception root with structured fields.

Every user-facing error says *what* was wrong, *where* (file, row, field) and *what to do*.
The CLI prints ``str(error)`` and exits with code 2; the server maps it to a 4xx.
"""

from __future__ import annotations

__all__ = [
    "ClinagentError",
    "IntentError",
    "DataFormatError",
    "DataValidationError",
    "LeakageError",
    "SpecError",
    "RecipeError",
    "ExecutionError",
    "SessionError",
    "SessionConflict",
    "UnknownNameError",
]


class ClinagentError(Exception):
    """Root of every error this package raises on purpose.

    Args:
        what: what is wrong, one sentence.
        where: file, row, field or cell the problem was found in (optional).
        fix: what the user can do about it (optional).
    """

    http_status: int = 400

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.where:
            parts.append(f"Where: {self.where}.")
        if self.fix:
            parts.append(f"What to do: {self.fix.rstrip('.')}.")
        return " ".join(parts)

    def to_dict(self) -> dict[str, str | None]:
        return {"error": type(self).__name__, "what": self.what, "where": self.where, "fix": self.fix,
                "message": self.message}


class IntentError(ClinagentError):
    """The clinician's request cannot be turned into a task (empty, not about imaging)."""


class SpecError(ClinagentError):
    """A TaskSpec is inconsistent with itself or with the data."""


class DataFormatError(ClinagentError):
    """The data path is missing, or no registered format matches its layout."""


class DataValidationError(ClinagentError):
    """The data has the right layout but bad content (missing column, corrupt images, one class...)."""


class LeakageError(DataValidationError):
    """The same image or the same patient appears in two splits."""


class RecipeError(ClinagentError):
    """A Recipe or a Recipe patch is invalid."""


class ExecutionError(ClinagentError):
    """An iteration notebook could not be run at all (not: it crashed, which is a recorded status)."""

    http_status = 500


class SessionError(ClinagentError):
    """A session folder is missing, incomplete, or an operation is not allowed in its state."""


class SessionConflict(SessionError):
    """The request conflicts with the session's state (an iteration runs; the test split was already read)."""

    http_status = 409


class UnknownNameError(ClinagentError, KeyError):
    """A name looked up in a registry does not exist; the message lists the known names."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown {kind} '{name}'; known: {', '.join(self.known) or '(none)'}",
                         fix=f"use one of the known {kind} names")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.message
