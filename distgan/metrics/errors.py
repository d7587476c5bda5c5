"""MetricsError: the one exception for user mistakes in evaluation (metric names, extractors, weights)."""

from distgan.errors import UserError


class MetricsError(UserError, ValueError):
    """A user mistake in evaluation: the message says what was wrong and what is valid."""
