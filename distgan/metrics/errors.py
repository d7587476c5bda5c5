"""MetricsError: the one exception for user mistakes in evaluation (metric names, extractors, weights)."""


class MetricsError(ValueError):
    """A user mistake in evaluation: the message says what was wrong and what is valid."""
