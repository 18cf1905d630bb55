"""The one exception type that means "the user's input or environment is wrong".

The CLI turns it into a one-line message and its `exit_code` (2 by default), never a
traceback. Library code raises it with a message that names the problem and, where it
helps, the way out.
"""

from __future__ import annotations

#: The exit code of a command stopped by Ctrl-C (SIGINT), as shells report it: 128 + 2.
EX_INTERRUPTED = 130


def run_error(exc: BaseException, *, prefix: str = "") -> str:
    """What a run's row records of the exception that stopped it: `Type: message`, after
    `prefix` ("crashed: "), or `interrupted (Ctrl-C)` for a Ctrl-C, which is no crash and has
    no message (the nightly run recorded "crashed: KeyboardInterrupt: ")."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"{prefix}{type(exc).__name__}: {exc}"


class UserError(Exception):
    exit_code: int = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
