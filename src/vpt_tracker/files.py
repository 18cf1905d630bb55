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


#: How much of a file's start `refuse_wide_text` needs to tell wide text without a mark.
WIDE_HEAD = 256


def refuse_wide_text(path: Path, head: bytes) -> None:
    """A UserError for a file whose first bytes `head` (`WIDE_HEAD` of them) are UTF-16 or
    UTF-32: a byte-order mark, or, without one, NUL bytes where wide text has them.

    Windows PowerShell 5's `>` and `Out-File`, and Notepad's "Unicode", write UTF-16. Read as
    UTF-8 it was "a binary file" (a README), "not valid JSON" on every line (a papers file),
    or a codec's error: each sent the maintainer looking for a broken file. Other tools
    (`iconv -t UTF-16LE`, Python's `utf-16-le`) write no mark, and such a file was told so
    only when it had one.
    """
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            raise UserError(f"{path} is {name} text, not UTF-8: save it as UTF-8")
    guess = _wide_without_bom(head)
    if guess is not None:
        raise UserError(f"{path} is {guess} text (without a byte-order mark), not UTF-8: save it as UTF-8")


def _wide_without_bom(head: bytes) -> str | None:
    """The wide encoding, "UTF-16" or "UTF-32", whose NUL bytes `head` holds where it puts them.

    UTF-8 text holds no NUL at all. In UTF-16 every ASCII character (markup, JSON, URLs: most
    of a README or a papers file) has one, in the same byte of its pair: the second (LE) or
    the first (BE); the other byte is hardly ever NUL. UTF-32 has two or three in each four.
    A binary file's NULs follow no such pattern.
    """
    sample = head[: len(head) // 4 * 4]
    if not sample:
        return None

    def share(start: int, step: int) -> float:
        column = sample[start::step]
        return column.count(0) / len(column)

    for nuls, kept in (((2, 3), 0), ((0, 1), 3)):  # UTF-32 LE, then BE
        if all(share(i, 4) == 1 for i in nuls) and share(kept, 4) == 0:
            return "UTF-32"
    for nul, other in ((1, 0), (0, 1)):  # UTF-16 LE, then BE
        if share(nul, 2) >= 0.5 and share(other, 2) <= 0.1:
            return "UTF-16"
    return None
