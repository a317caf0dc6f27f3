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
    """The session is finished, withdrawn, declined or expired; nothing more can be stored."""


class InvalidAnswer(StudyError):
    """The answer does not fit the step's schema, or names a step that is not the current one."""


class StudyFull(StudyError):
    """Every condition has reached its target number of participants."""


class StimulusError(StudyError):
    """A stimulus folder is missing, incomplete or does not match its manifest hashes."""


class InvalidInput(StudyError):
    """An id, token or parameter is malformed (wrong characters, too long)."""
