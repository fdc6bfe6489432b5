"""The one exception type for mistakes a user can cause."""


class DtkError(Exception):
    """A user-facing error: its message says what went wrong and what to do.

    The CLI prints it in red and exits with code 2, without a traceback
    (`dtk --debug ...` shows the traceback).
    """

    exit_code = 2
