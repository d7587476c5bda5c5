"""UserError, the base of every error that means "fix your input", and every exit code distgan uses.

Entry points catch UserError once, print its one-line message and exit 2; anything else is a bug
and keeps its traceback. Each concern subclasses it (ConfigError, DataError, CheckpointError,
DistributedError, MetricsError, TrackingError) so callers can still tell them apart; CheckpointError
lives here because both checkpoint.py and the backends' state loaders raise it.
This module imports nothing from distgan: every other module may import it.
"""

from __future__ import annotations

import sys

USER_ERROR_EXIT_CODE = 2  # bad input: the one-line message says what to fix
DIVERGED_EXIT_CODE = 3  # training produced NaN/inf and could not (or was told not to) recover
LOST_CONTACT_EXIT_CODE = 69  # EX_UNAVAILABLE: another process died or went silent; resubmit to resume
PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: checkpointed on a signal, run not finished; requeue me
MAX_MESSAGE = 2000  # characters of one error line


class UserError(Exception):
    """A mistake in the user's input (config, data, checkpoint, launch): the message says the fix."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint or run directory that cannot be used: the message says what was expected."""


def report(err: UserError) -> int:
    """Print `err` as one line on stderr and return the exit code for user errors."""
    message = " ".join(str(err).split("\n"))
    if len(message) > MAX_MESSAGE:  # a last guard: messages name values with brief(), never whole files
        message = f"{message[:MAX_MESSAGE]}... ({len(message)} characters)"
    print(f"error: {message}", file=sys.stderr, flush=True)
    return USER_ERROR_EXIT_CODE


def brief(value: object, limit: int = 40) -> str:
    """`value` for an error message: its repr, cut to `limit` characters with its type and length
    when longer, so a message never carries a whole file or a megabyte of YAML."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = len(value) if isinstance(value, str | bytes | list | dict) else len(text)
    return f"{text[:limit]}... ({type(value).__name__} of length {length})"
