"""Readers of local metadata dumps: they turn files into `RawRecord`s, and nothing else.

Two formats are read:
- the abstract corpus (`*.jsonl`), one object per line with `id, title, summary, authors,
  categories, comment, abs, pdf`; `id` may be missing, then identity comes from the title and
  the authors;
- a conference index (`CVPR2022.json`, `ICLR2024.json`, ...): one object mapping each paper's
  page URL to `{title, abstract, authors, volume, ...}`, the venue and year coming from the
  file name.

A whole file is read and checked before any record is handed out, so that a malformed line
(named `file:line`) stops the load before anything of that file is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vpt_tracker import normalize
from vpt_tracker.errors import UserError
from vpt_tracker.files import WIDE_HEAD, refuse_wide_text
from vpt_tracker.models import RawRecord

JSONL_SOURCE = "jsonl"
CONFERENCE_SOURCE = "conference-index"

_CONFERENCE_NAME = re.compile(r"^([A-Za-z]+)[-_ ]?((?:19|20)\d{2})$")


def json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words ("null", "a number"), for messages: Python's type
    names ("got NoneType", "got int") mean nothing to whoever wrote the file."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (str, "a string"),
        ((int, float), "a number"),
        (list, "an array"),
        (dict, "an object"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


ONE_PER_LINE = "expected one JSON object per line, not a JSON array"


class JsonNumber(float):
    """A JSON number with a fraction or exponent, as `iter_jsonl` reads it: a float that keeps
    the digits it was written with (`text`).

    An arXiv id written as a number, `2203.10100`, is the float 2203.101: the paper became
    "2203.101" (no such id) and `classify score` wrote the id back as `2203.101`. It is still a
    float for every check and computation; `literal` and `score`'s writer use its text.
    """

    text: str

    def __new__(cls, text: str) -> JsonNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


def literal(value: Any) -> str:
    """A JSON scalar as its text: a string as is, a number with the digits it was written with
    (`2203.10100`, `7`), anything else as Python writes it."""
    if isinstance(value, str):
        return value
    return value.text if isinstance(value, JsonNumber) else str(value)


def expect_object(data: Any, where: str) -> None:
    """A UserError naming the line unless it holds a JSON object.

    A file written as one JSON array on one line is valid JSON: it is told so, as an array
    spread over lines is (`iter_jsonl`), not only "got an array".
    """
    if isinstance(data, dict):
        return
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        raise UserError(f"{where}: expected a JSON object, got an array of them; {ONE_PER_LINE}")
    raise UserError(f"{where}: expected a JSON object, got {json_kind(data)}")


def text_field(value: Any, where: str, name: str, *, required: bool = False) -> str:
    """A line's text field, or a UserError naming the line and what it holds instead (every
    reader of papers files says it the same way)."""
    if value is None:
        if required:
            raise UserError(f"{where}: missing {name!r}")
        return ""
    if not isinstance(value, str):
        raise UserError(f"{where}: {name!r} must be a string, not {json_kind(value)}")
    if required and not value.strip():
        raise UserError(f"{where}: {name!r} is empty")
    return value


def _strings(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UserError(f"{where}: {name!r} must be a list of strings")
    return tuple(item.strip() for item in value if item.strip())


def first_text(data: dict[str, Any], keys: Sequence[str]) -> str | None:
    """The first of `keys` holding non-blank text, else ""; None when one is not a string.

    An exporter may write both `abstract` and `summary` (the corpus's name), one of them
    empty or null: taking `abstract` whenever it was present scored every paper from its
    title alone, and `ingest-jsonl`, reading only `summary`, stored papers written with
    `abstract` (the `classify score` input format) without one.
    """
    found = ""
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return None
        if not found and value.strip():
            found = value
    return found


def corpus_record(data: Any, where: str) -> RawRecord:
    """One corpus line as a record; `where` (file:line) names it in errors."""
    expect_object(data, where)
    title = " ".join(text_field(data.get("title"), where, "title", required=True).split())
    raw_id = _id_text(data.get("id"), where)
    arxiv = normalize.arxiv_id(raw_id) if raw_id else None
    if raw_id and arxiv is None:
        raise UserError(f"{where}: 'id' {raw_id!r} is not an arXiv id")
    authors = _strings(data.get("authors"), where, "authors")
    categories = _strings(data.get("categories"), where, "categories")
    comment = text_field(data.get("comment"), where, "comment") or None
    abs_url = text_field(data.get("abs"), where, "abs") or None
    pdf_url = text_field(data.get("pdf"), where, "pdf") or None
    abstract = first_text(data, ("summary", "abstract"))
    if abstract is None:
        raise UserError(f"{where}: 'summary' and 'abstract' must be strings")
    if arxiv is not None:
        source_id = arxiv
    else:
        # Without an id the record is known by its folded title and first author.
        source_id = f"{normalize.title_key(title)[:400]}|{normalize.first_author_key(authors)}"
    return RawRecord(
        source=JSONL_SOURCE,
        source_id=source_id,
        title=title,
        abstract=abstract.strip(),
        authors=authors,
        arxiv_id=arxiv,
        arxiv_version=normalize.arxiv_version(raw_id) if raw_id else None,
        categories=categories,
        primary_category=categories[0] if categories else None,
        comment=comment,
        abs_url=abs_url,
        pdf_url=pdf_url,
    )


def _id_text(value: Any, where: str) -> str:
    """A corpus line's `id` as text: a string, or a number as written (`2203.10100`, which
    JSON's reader makes 2203.101; it was refused as "must be a string, not a number")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return literal(value)
    return text_field(value, where, "id")


def iter_jsonl(path: Path, *, errors: str = "strict", required: bool = False) -> Iterator[tuple[str, Any]]:
    """(`file:line`, parsed value) for each non-blank line of a JSON-lines file.

    `required`: a file without a line (empty, or blank lines only) is a UserError `FILE holds
    no records`, for the commands given the file to read (`ingest-jsonl`, `classify score`):
    one said "0 records" and succeeded, the other refused it, each in its own words.

    Every reader of local dumps (ingestion, the classifier's training and scoring input) goes
    through here, so a bad line is always a UserError naming `file:line`. `errors="replace"`
    tolerates undecodable bytes where a caller would rather score odd text than stop. A
    leading byte-order mark (Windows editors and PowerShell write one) is skipped. A number
    with a fraction or exponent is a `JsonNumber`, which keeps the digits it was written with.
    """
    try:
        with path.open("rb") as raw:
            refuse_wide_text(path, raw.read(WIDE_HEAD))
        handle = path.open(encoding="utf-8-sig", errors=errors)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    found = False
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                found = True
                where = f"{path}:{number}"
                try:
                    yield where, json.loads(line, parse_float=JsonNumber)
                except json.JSONDecodeError as exc:
                    hint = ""
                    if number == 1 and line.lstrip().startswith("["):
                        hint = f"; {ONE_PER_LINE}"
                    raise UserError(f"{where}: not valid JSON ({exc.msg}){hint}") from None
                # Valid JSON past Python's limits: arrays nested thousands deep, an integer of
                # more than 4300 digits. Both were tracebacks that did not name the line.
                except RecursionError:
                    raise UserError(f"{where}: cannot read its JSON (nested too deeply)") from None
                except ValueError as exc:
                    reason = str(exc).split(";")[0]
                    raise UserError(f"{where}: cannot read its JSON ({reason})") from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text") from None
    if required and not found:
        raise UserError(f"{path} holds no records (one JSON object per line expected)")


def read_corpus_jsonl(path: Path) -> list[RawRecord]:
    """Every record of a corpus file; UserError naming `file:line` on the first bad line, or
    the file when it holds none."""
    return [corpus_record(data, where) for where, data in iter_jsonl(path, required=True)]


def conference_of(path: Path) -> tuple[str, int]:
    """The venue and year a conference index covers, from its name (`ICLR2024.json`)."""
    match = _CONFERENCE_NAME.match(path.stem)
    if not match:
        raise UserError(f"{path}: cannot tell the venue and year from the file name (e.g. CVPR2022.json)")
    return match.group(1), int(match.group(2))


# An index's `volume` for papers of the main conference; any other volume is a track of its own.
_MAIN_VOLUMES = frozenset({"main", "oral", "spotlight", "poster"})
_TRACK_NAMES = {"tiny": "Tiny Papers"}


def track_venue(venue: str, volume: object) -> str:
    """The venue a paper of `volume` appeared at: "ICLR", or "ICLR Tiny Papers" for the 219
    `tiny` papers of ICLR 2023, which must not upgrade a preprint to the main conference."""
    if not isinstance(volume, str) or not volume.strip() or volume.strip().lower() in _MAIN_VOLUMES:
        return venue
    track = volume.strip()
    return f"{venue} {_TRACK_NAMES.get(track.lower(), track)}"


_JSON_LINES_HINT = "(a .json file is read as one conference index; name JSON lines .jsonl)"


def read_conference_index(path: Path) -> list[RawRecord]:
    """Every paper of a conference index, as venue sightings of that conference."""
    venue, year = conference_of(path)
    try:
        # utf-8-sig: a leading byte-order mark is skipped, as `iter_jsonl` skips it.
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        extra = (
            f" {_JSON_LINES_HINT}"
            if isinstance(exc, json.JSONDecodeError) and exc.msg == "Extra data"
            else ""
        )
        raise UserError(f"{path}: not valid JSON ({getattr(exc, 'msg', exc)}){extra}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object mapping page URLs to papers")
    if isinstance(data.get("title"), str):
        # One line of JSON lines (a single paper) is valid JSON too; its "id" was then a page
        # URL, and the error said only "id: expected an object".
        raise UserError(f"{path}: holds one paper, not a conference index {_JSON_LINES_HINT}")
    records = []
    for url, entry in data.items():
        where = f"{path}: {url}"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected an object")
        title = " ".join(text_field(entry.get("title"), where, "title", required=True).split())
        records.append(
            RawRecord(
                source=CONFERENCE_SOURCE,
                source_id=url,
                title=title,
                abstract=text_field(entry.get("abstract"), where, "abstract").strip(),
                authors=_strings(entry.get("authors"), where, "authors"),
                openreview_id=normalize.openreview_id(url) if "openreview.net" in url else None,
                cvf_url=normalize.cvf_url(url),
                venue=track_venue(venue, entry.get("volume")),
                year=year,
                abs_url=url,
                payload={"volume": entry.get("volume")} if entry.get("volume") else {},
            )
        )
    return records


def read_dump(path: Path) -> list[RawRecord]:
    """A conference index (`ICLR2024.json`: one JSON object, named venue and year), or else
    a corpus file of one JSON object per line, whatever its extension (`.jsonl`, `.txt`)."""
    if path.suffix == ".json":
        return read_conference_index(path)
    return read_corpus_jsonl(path)
