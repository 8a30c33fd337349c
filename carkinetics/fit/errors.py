"""Exceptions and warnings of fitting."""

from __future__ import annotations

from carkinetics.errors import CarKineticsError


class FitError(CarKineticsError, ValueError):
    """A fit cannot be set up as requested (unknown parameter, bad bounds, no data...)."""


class NonIdentifiableWarning(UserWarning):
    """A profile likelihood stays below the 95% threshold up to a bound: not identifiable."""
