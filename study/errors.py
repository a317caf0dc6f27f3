"""Exceptions of the study package; pages show `str(exc)` to people."""

from __future__ import annotations


class StudyError(Exception):
    """Base class: a clear, user-facing problem."""


class SpecError(StudyError):
    """A study spec is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[str], source: str = "spec") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class NotFound(StudyError):
    """Unknown study, version, participant or token."""


class AlreadyParticipated(StudyError):
    """This Prolific participant already took (or withdrew from) this study."""


class SessionClosed(StudyError):
    """The session is finished, withdrawn, declined or expired; nothing more can be stored.
    `status` is the session's status (completed, withdrawn, declined, abandoned, screened_out)."""

    def __init__(self, message: str, status: str = "") -> None:
        self.status = status
        super().__init__(message)


class SessionExpired(SessionClosed):
    """The session ran past its time limit (idle or total) and is now 'abandoned'."""


class InvalidAnswer(StudyError):
    """The answer does not fit the step's schema, or names a step that is not the current one."""


class StudyFull(StudyError):
    """Every condition has reached its target number of participants."""


class StimulusError(StudyError):
    """A stimulus folder is missing, incomplete or does not match its manifest hashes."""


class InvalidInput(StudyError):
    """An id, token or parameter is malformed (wrong characters, too long)."""


class SessionMismatch(StudyError):
    """A Prolific ID with an open session came back with a different (or no) SESSION_ID."""


class TooManyStarts(StudyError):
    """Too many new sessions from one client in a short time."""


class StudyUnavailable(StudyError):
    """The study is paused or closed: no new sessions (`status` says which)."""

    def __init__(self, message: str, status: str) -> None:
        self.status = status
        super().__init__(message)


class DatabaseUnavailable(StudyError):
    """The study's database cannot be reached (connection lost or refused)."""
