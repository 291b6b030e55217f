"""One exception type for problems a user can fix (bad path, wrong shape, unknown name).

Library code raises :class:`UserInputError` with a one-line message that names the problem and
the fix; the CLI turns it into a clean error exit without a traceback.
"""


class UserInputError(ValueError):
    """Invalid input from the user: the message says what is wrong and how to fix it."""
