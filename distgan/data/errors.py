"""DataError: the one exception type for user-facing data problems.

A DataError message says what was wrong, where (config key, file, row, column)
and what would be valid. Raised in the main training process, never left to
crash deep inside a DataLoader worker. This module defines the type only.
"""

from __future__ import annotations

from distgan.errors import UserError


class DataError(UserError, ValueError):
    """A problem with the configured data: the message names file/row/column and what is valid."""
