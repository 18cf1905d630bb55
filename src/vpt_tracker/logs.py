"""Logging set-up for the CLI and the scheduler.

Secrets never reach a log: every handler carries a filter that replaces the values of
the configured secrets with `**********`, whatever code logged them.

`serve` logs one JSON line per job run: while a job runs (`job_log()`), what the code under
it logs is folded into that line instead of printed beside it (`FoldIntoJobLine`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

MASK = "**********"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def redact_value(self, value: Any) -> Any:
        """`value` with every string in it redacted, however deeply nested."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self.redact_value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_value(item) for item in value]
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
            # A job's line carries its outcome as fields (`error`, a source's `errors`), and
            # an exception's text can hold a secret as well as a message can.
            fields = getattr(record, "fields", None)
            if isinstance(fields, dict):
                record.fields = self.redact_value(fields)
        return True


#: The records of the job running in this thread (each scheduler job runs in a thread of its own).
_job_records: ContextVar[list[dict[str, str]] | None] = ContextVar("vpt_job_records", default=None)


@contextmanager
def job_log() -> Iterator[list[dict[str, str]]]:
    """Collect, for the job's line, the warnings and errors logged in this thread meanwhile.

    The list stays empty unless the handler folds (`configure(one_line_per_job=True)`):
    elsewhere (`run nightly`, tests with caplog) records are printed as they come.
    """
    records: list[dict[str, str]] = []
    token = _job_records.set(records)
    try:
        yield records
    finally:
        _job_records.reset(token)


class FoldIntoJobLine(logging.Filter):
    """Inside `job_log()`, hold records back from the handler: warnings and errors go into the
    job's line (its `warnings` field), the INFO and DEBUG chatter of the code it ran is dropped.

    Added after `RedactSecrets`, so what it keeps is already redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        records = _job_records.get()
        if records is None:
            return True
        if record.levelno >= logging.WARNING:
            records.append(
                {"level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
            )
        return False


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for the scheduler's per-job lines."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            data.update(extra)
        return json.dumps(data, default=str)


def configure(
    verbosity: int = 0, secrets: Iterable[str] = (), json_lines: bool = False, one_line_per_job: bool = False
) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    plain = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonFormatter() if json_lines else plain)
    handler.addFilter(RedactSecrets(secrets))
    if one_line_per_job:
        handler.addFilter(FoldIntoJobLine())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party debug chatter (httpcore, etc.) stays at INFO unless -vvv.
    for noisy in ("httpcore", "httpx", "urllib3", "asyncio", "markdown_it"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
