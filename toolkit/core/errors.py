"""The one exception type for mistakes a user can cause."""


class DtkError(Exception):
    """A user-facing error: its message says what went wrong and what to do.

    The CLI prints it in red and exits with code 2, without a traceback
    (`dtk --debug ...` shows the traceback).
    """

    exit_code = 2


class FrameSkipped(DtkError):
    """One frame that a command cannot use (unreadable, or not scorable): skipped and listed with
    `reason`, or raised with --strict."""

    prefix = ""  # what the message says before the path

    def __init__(self, path: object, reason: str):
        super().__init__(f"{self.prefix}{path}: {reason}")
        self.path = str(path)
        self.reason = reason
