"""A Ctrl-C while the command line loads is one line and exit code 130, as later.

Loading the commands (SQLAlchemy, Alembic, scikit-learn, Textual) takes a second, several on
a busy machine, and a maintainer who sees that they typed the wrong command presses Ctrl-C
then: that was a KeyboardInterrupt traceback of forty lines from inside some import. Nothing
has started yet, so there is nothing to roll back: the handler that `vpt_tracker.cli`
installs first says so and exits. `finished()` hands SIGINT back to Python's handler, and
from then on `run_guarded` turns a Ctrl-C into the same line.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

from vpt_tracker.errors import EX_INTERRUPTED


def _interrupted_while_loading(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write("Error: interrupted\n")
    sys.stderr.flush()
    raise SystemExit(EX_INTERRUPTED)


def _replace(current: object, handler: Any) -> None:
    # Only the main thread may set a handler, and one a host installed (a test runner's) stays.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is current:
        signal.signal(signal.SIGINT, handler)


def begin() -> None:
    _replace(signal.default_int_handler, _interrupted_while_loading)


def finished() -> None:
    _replace(_interrupted_while_loading, signal.default_int_handler)


begin()
