"""Files written whole or not at all, by any number of writers at once.

A result is written under a temporary name of its own (`temporary_file`), fsynced, and
renamed over its path; `sync_folder` then makes the rename last. Model saves
(`classify.model`) and command results (`cli.context.write_output`) both go this way.
"""

from __future__ import annotations

import codecs
import os
import uuid
from pathlib import Path

from vpt_tracker.errors import UserError


def temporary_file(directory: Path, name: str) -> Path:
    """A new, empty file `<name>.<random>.tmp` in `directory`, made by this call alone.

    Fixed names (`model.pkl.xz.tmp`, `scores.jsonl.tmp`) were shared by every writer of the
    folder: a second `classify train` (or `make models`) overwrote the first one's
    half-written file and one of them renamed the other's in. `O_EXCL` guarantees the name is ours; unlike
    `tempfile.mkstemp` it keeps the umask's permissions (mkstemp's 0600 would leave a model
    that a service running as another user cannot read).
    """
    while True:
        path = directory / f"{name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def sync_folder(directory: Path) -> None:
    """fsync `directory`, so that the renames into it last; a no-op where folders cannot be
    opened (Windows), whose renames are durable without it."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


#: Byte-order marks of the wide encodings, UTF-32 LE first: its mark begins with UTF-16 LE's.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def refuse_wide_text(path: Path, head: bytes) -> None:
    """A UserError for a file whose first bytes `head` are a UTF-16 or UTF-32 byte-order mark.

    Windows PowerShell 5's `>` and `Out-File`, and Notepad's "Unicode", write UTF-16. Read as
    UTF-8 it was "a binary file" (a README), "not valid JSON" on every line (a papers file),
    or a codec's error: each sent the maintainer looking for a broken file.
    """
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            raise UserError(f"{path} is {name} text, not UTF-8: save it as UTF-8")
