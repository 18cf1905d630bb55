"""Files written whole or not at all, by any number of writers at once.

A result is written under a temporary name of its own (`temporary_file`), fsynced, and
renamed over its path; `sync_folder` then makes the rename last. A writer killed on the way
leaves its temporary file: the next writer of the same path removes it. Model saves
(`classify.model`) and command results (`cli.context.write_output`) both go this way.
"""

from __future__ import annotations

import codecs
import fcntl
import hashlib
import logging
import os
import re
import socket
import uuid
from pathlib import Path
from typing import IO, Any

from vpt_tracker.errors import UserError

log = logging.getLogger(__name__)


def temporary_file(directory: Path, name: str, mode: str = "wb", **options: Any) -> IO[Any]:
    """A new file `<name>.<host>-<pid>-<random>.tmp` in `directory`, made by this call alone,
    open (`mode`: "wb", or "w" with `options` for `open`) and locked for as long as it is.

    Fixed names (`model.pkl.xz.tmp`, `scores.jsonl.tmp`) were shared by every writer of the
    folder: a second `classify train` (or `make models`) overwrote the first one's
    half-written file and one of them renamed the other's in. `O_EXCL` ("x") guarantees the
    name is ours; unlike `tempfile.mkstemp` it keeps the umask's permissions (mkstemp's 0600
    would leave a model that a service running as another user cannot read).

    The caller renames the file over its target (or removes it) before it closes the handle:
    the lock, an `flock` on the handle, is how a later writer tells a file whose writer was
    killed from one being written (`_remove_leftovers`, run here first). The kernel lets go
    of it when the writer dies, even by SIGKILL, and only then; a killed writer's file was
    left for the maintainer to delete by hand. A sweeper may lock and remove the new file
    between its creation and our lock: it is then no longer the one at its path
    (`same_file`), and another name is made.
    """
    _remove_leftovers(directory, name)
    while True:
        path = directory / f"{name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        try:
            handle: IO[Any] = open(path, mode.replace("w", "x"), **options)  # noqa: SIM115 - the caller closes it
        except FileExistsError:
            continue
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a sweeper holds it: it removes it
            handle.close()
            continue
        except BaseException:
            handle.close()
            raise
        if same_file(handle.fileno(), path):
            return handle
        handle.close()  # a sweeper removed it before our lock


#: This host's part of a temporary name: a leftover is only removed on the host that made it.
#: Its lock proves a writer gone only where locks are shared (one kernel, or NFS with its lock
#: manager); on an NFS mount with local locks (`local_lock=all`, `nolock`) another host's
#: writer would look gone. A hash: host names may hold dots and dashes, or be long.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _remove_leftovers(directory: Path, name: str) -> list[Path]:
    """Remove the temporary files of `name` in `directory` (`temporary_file`'s, made on this
    host) whose writer is gone: nobody holds their lock. The paths removed.

    A file goes only while this process holds its lock (a non-blocking `flock`, never a wait)
    and only if it is still the file at the path (`remove_unheld`): a live writer's
    file is left alone, even one that it made an instant ago and has not locked yet (it sees
    its file gone and makes another). Names of other shapes (another host's, those of
    versions before locked temporary files: `<name>.<random>.tmp`) are never touched.
    """
    shape = re.compile(rf"{re.escape(name)}\.{_HOST}-[0-9]+-[0-9a-f]{{8}}\.tmp")
    try:
        entries = sorted(entry.name for entry in os.scandir(directory) if shape.fullmatch(entry.name))
    except OSError:  # a folder that is missing or cannot be listed: creating the file says why
        return []
    removed = [directory / entry for entry in entries if remove_unheld(directory / entry)]
    for path in removed:
        log.info("removed %s, left by a writer that was killed", path)
    return removed


def remove_unheld(path: Path) -> bool:
    """Remove the file `path` if nobody holds its `flock`; whether it went.

    It goes only while this process holds the lock (a non-blocking `flock`, never a wait)
    and only if the file locked is still the one at the path: a holder's file is left, and
    so is one that was replaced since it was opened here. Lock files whose holder was killed
    (`locks.sweep_unheld`) and temporary files of killed writers (`temporary_file`) go this way.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # not O_CREAT: never makes one
    except OSError:
        return False
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held (or not lockable): left alone
            return False
        if not same_file(descriptor, path):
            return False
        try:
            path.unlink()
        except OSError:  # a folder this user may not write: it stays
            return False
        return True
    finally:
        os.close(descriptor)  # lets go of the lock, after the file went


def same_file(descriptor: int, path: Path) -> bool:
    """Whether the open file `descriptor` is the file at `path` now (not removed or replaced)."""
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


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
