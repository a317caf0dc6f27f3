"""User-facing errors of the engine: each carries a one-line message that says what to do."""

from __future__ import annotations


class ConvisError(Exception):
    """Base class: a problem with the user's input or setup, shown as one line."""


class InvalidImageError(ConvisError):
    """The file is not a usable image (corrupt, unsupported, too large or too small)."""


class UnknownConceptError(ConvisError):
    """The synset name does not exist in WordNet or is not a noun."""


class EmptyConceptError(ConvisError):
    """The concept has no leaves in the chosen concept bank."""


class WeightsUnavailableError(ConvisError):
    """Pretrained weights could not be found locally nor downloaded."""


class UnsupportedModelError(ConvisError):
    """The model architecture or method combination is not supported."""
