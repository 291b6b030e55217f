"""Exceptions whose message is meant for the user: one line naming the problem and the fix.

The CLI turns any :class:`PyroDVAEError` into a clean error exit without a traceback.
"""


class PyroDVAEError(Exception):
    """Base class of the package's user-facing errors."""

    exit_code = 1


class DataWarning(UserWarning):
    """Something about the user's data was worked around (files skipped, a damaged cache rebuilt); the
    message says what, one line each. The CLI prints it as ``warning: MESSAGE``."""


class UserInputError(PyroDVAEError, ValueError):
    """Invalid input from the user: a bad path, shape, type, name or value."""


class TrainingDiverged(PyroDVAEError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(PyroDVAEError):
    """Ctrl-C during training; a checkpoint was saved so the run can be resumed."""

    exit_code = 130


class TrainingFailed(PyroDVAEError):
    """Another process of a data-parallel run failed; this one stops, the last checkpoint kept."""
