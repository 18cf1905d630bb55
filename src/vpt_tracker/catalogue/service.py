"""The catalogue use cases on top of the store: import, render, add, upgrade, stats.

The store keeps the README exactly as imported (`catalogues.source_text`) plus one row per
entry. A render starts from that text and replays only what vpt-tracker changed (entry
rows in state "updated" and "added"), so an import followed by a render gives back the
same bytes, and a change shows up as a diff of exactly its own lines.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vpt_tracker import normalize
from vpt_tracker.catalogue.markdown import Document, NewEntry, ParsedEntry, parse
from vpt_tracker.classify.presets import SHIPPED, Presets
from vpt_tracker.classify.taxonomy import Preset
from vpt_tracker.errors import UserError
from vpt_tracker.models import check_catalogue_name, check_github_repo, check_readme_path
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CatalogueRow, EntryRow, utcnow
from vpt_tracker.wording import plural


def section_name(path: Sequence[str]) -> str:
    """A section as `catalogue stats` names it ("Papers > Pixel-level"; "(top)" before any heading)."""
    return " > ".join(path) or "(top)"


@dataclass(frozen=True)
class ImportResult:
    catalogue_id: int
    name: str
    entries: int
    sections: int  # every section of the README, headings without entries too
    filled: int  # the sections with entries: the ones `catalogue stats` lists
    replaced: bool
    warnings: tuple[str, ...] = ()  # what the preset and this README disagree on (`preset_warnings`)

    @classmethod
    def of(
        cls,
        catalogue_id: int,
        name: str,
        doc: Document,
        entries: int,
        replaced: bool,
        preset: Preset | None = None,
    ) -> ImportResult:
        filled = {section_name(e.section_path) for e in doc.entries}
        sections = {section_name(p) for p in doc.section_paths()} | filled  # "(top)" has no heading
        warnings = tuple(preset_warnings(preset, doc))
        return cls(catalogue_id, name, entries, len(sections), len(filled), replaced, warnings)

    def summary(self) -> str:
        """What a maintainer is told after an import (the CLI and the demo say it alike).

        "56 entries in 24 sections" counted every heading, while `catalogue stats` lists the
        10 sections that hold entries: both are said when they differ."""
        verb = "replaced" if self.replaced else "imported"
        entries = plural(self.entries, "entry", "entries")
        if self.filled == self.sections:
            return f"{verb} {self.name!r}: {entries} in {plural(self.sections, 'section')}"
        sections = f"{plural(self.sections, 'section')} ({self.filled} with entries)"
        return f"{verb} {self.name!r}: {entries}, {sections}"


def preset_warnings(preset: Preset | None, doc: Document) -> list[str]:
    """What a preset and the README it labels disagree on, for the maintainer who wrote the
    preset: a placement whose section the README has not (a paper accepted with those labels
    cannot be published), a `[[silent]]` heading it has not (the labels stay in the models
    there), and labels no entry has (a misspelt heading or badge in a `when`:
    the label has no example to learn from). Neither stops the import: a list rewritten
    upstream may have dropped a section the preset still names."""
    if preset is None:
        return []
    warnings = []
    missing: dict[str, list[list[str]]] = {}
    for labels, placement in preset.unplaceable(doc.section_paths()):
        missing.setdefault(" > ".join(placement), []).append(labels)
    for heading, label_sets in missing.items():
        which = " or ".join(str(labels) if labels else "any other labels" for labels in label_sets)
        warnings.append(
            f"preset {preset.name!r} puts new papers with {'the labels ' if label_sets[0] else ''}{which} "
            f"in {heading!r}, a section this README does not have: such a paper cannot be published"
        )
    if missing:
        known = "; ".join(" > ".join(path) for path in doc.section_paths() if path)
        warnings.append(f"this README's sections: {known}")
    headings = [part.lower() for path in doc.section_paths() for part in path]
    for heading, _keys in preset.silent:
        if not any(heading in part for part in headings):
            warnings.append(
                f"preset {preset.name!r} is silent under {heading!r}, which is part of no heading "
                "of this README: check its [[silent]] section"
            )
    shown = {key for e in doc.entries for key in preset.labels_for(e.section_path, e.badges, e.cells)}
    unused = [key for key in preset.label_keys if key not in shown]
    if unused:
        one = len(unused) == 1
        warnings.append(
            f"no entry of this README has the {'label' if one else 'labels'} {', '.join(map(repr, unused))} "
            f"of preset {preset.name!r}: check {'its `when`' if one else 'their `when` tables'} "
            "(a section rule matches part of a heading, a badge rule a badge's whole text as "
            "shields.io shows it: `Pixel_Level_Prompt-orange` is 'Pixel Level Prompt')"
        )
    return warnings


def get_catalogue(session: Session, name: str) -> CatalogueRow:
    """The catalogue `name`; a UserError names the known ones if it does not exist."""
    row = session.scalar(select(CatalogueRow).where(CatalogueRow.name == name))
    if row is None:
        known = session.scalars(select(CatalogueRow.name).order_by(CatalogueRow.name)).all()
        # The import line names the catalogue asked for: `catalogue import` without `--name` fails.
        how = f"import it with `vpt-tracker catalogue import README.md --name {name}`"
        listing = ", ".join(known) if known else f"none yet; {how}"
        raise UserError(f"unknown catalogue {name!r}; known catalogues: {listing}")
    return row


def entry_labels(preset: Preset | None, entry: ParsedEntry) -> list[str]:
    """Preset labels; without a preset the section path is the labelling."""
    if preset is None:
        return list(entry.section_path)
    return preset.labels_for(entry.section_path, entry.badges, entry.cells)


def entry_row(entry: ParsedEntry, labels: list[str]) -> EntryRow:
    return EntryRow(
        position=entry.index,
        section_path=list(entry.section_path),
        labels=labels,
        badges=list(entry.badges),
        title=entry.title,
        title_key=normalize.title_key(entry.title)[:512],
        short_name=_clipped(entry.short_name, 255),
        venue=_clipped(entry.venue, 128),
        year=entry.year,
        paper_url=entry.paper_url,
        code_url=entry.code_url,
        arxiv_id=entry.arxiv_id,
        raw=entry.raw,
        line=entry.line,
        state="imported",
        extra={"kind": entry.kind, "style": entry.style, "cells": dict(entry.cells)},
    )


def _clipped(text: str | None, size: int) -> str | None:
    """`text` cut to its column's size. A README cell may hold a whole note where the venue
    goes; the entry's raw line keeps all of it, so only this searchable copy is cut (before,
    PostgreSQL refused the import with a traceback; SQLite kept it whole)."""
    return text[:size] if text is not None else None


def import_catalogue(
    engine: Engine,
    name: str,
    text: str,
    *,
    preset: str | None,
    readme_path: str | None = None,
    github_repo: str | None = None,
    replace: bool = False,
    presets: Presets = SHIPPED,
) -> ImportResult:
    """Store a README and its entries in one transaction; refuse a second import of the
    same name unless `replace`, which drops the old entries (not the papers, nor the
    catalogue's candidates, review decisions and pull requests). To keep vpt-tracker's own
    pending changes as well, take the new README in with `publish.upstream.rebase_catalogue`
    (`vpt-tracker catalogue import --replace` does)."""
    _as_user_error(check_catalogue_name, name)
    if github_repo is not None:
        _as_user_error(check_github_repo, github_repo)
    if readme_path is not None:
        _as_user_error(check_readme_path, readme_path)
    preset_obj = presets.load(preset) if preset is not None else None  # "" is no preset: refused
    doc = parse(text)
    try:
        return _store_import(engine, name, text, doc, preset, preset_obj, readme_path, github_repo, replace)
    except IntegrityError:
        # another import of the same name committed first (two imports at once)
        raise UserError(f"catalogue {name!r} was imported concurrently; run the import again") from None


def _as_user_error(check: Callable[[str], object], value: str) -> None:
    """Run a value check whose `ValueError` is the user's mistake: one line, no traceback."""
    try:
        check(value)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _store_import(
    engine: Engine,
    name: str,
    text: str,
    doc: Document,
    preset: str | None,
    preset_obj: Preset | None,
    readme_path: str | None,
    github_repo: str | None,
    replace: bool,
) -> ImportResult:
    with transaction(engine) as session:
        existing = session.scalar(select(CatalogueRow).where(CatalogueRow.name == name))
        if existing is not None:
            if not replace:
                raise UserError(f"catalogue {name!r} already exists; pass --replace to import it again")
            # Keep the row: candidates, decisions and pull requests hang on it (and go with it).
            existing.entries.clear()
            session.flush()
        row = existing or CatalogueRow(name=name)
        row.preset, row.readme_path, row.github_repo = preset, readme_path, github_repo
        row.source_text = text
        row.source_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        row.upstream_commit, row.imported_at = None, utcnow()
        row.entries = [entry_row(e, entry_labels(preset_obj, e)) for e in doc.entries]
        session.add(row)
        session.flush()
        return ImportResult.of(row.id, name, doc, len(doc.entries), existing is not None, preset_obj)


def configure_catalogue(
    session: Session,
    name: str,
    *,
    preset: str | None = None,
    readme_path: str | None = None,
    github_repo: str | None = None,
    presets: Presets = SHIPPED,
) -> CatalogueRow:
    """Change the given settings of an imported catalogue (None keeps a setting), checked
    as `import_catalogue` checks them."""
    catalogue = get_catalogue(session, name)
    if github_repo is not None:
        _as_user_error(check_github_repo, github_repo)
        catalogue.github_repo = github_repo
    if preset is not None:
        presets.load(preset)
        catalogue.preset = preset
    if readme_path is not None:
        _as_user_error(check_readme_path, readme_path)
        catalogue.readme_path = readme_path
    return catalogue


def _new_entry(row: EntryRow) -> NewEntry:
    return NewEntry(
        title=row.title,
        venue=row.venue,
        year=row.year,
        paper_url=row.paper_url,
        code_url=row.code_url,
        short_name=row.short_name,
        badges=list(row.badges or []),
        cells=dict((row.extra or {}).get("cells", {})),
    )


def catalogue_document(catalogue: CatalogueRow) -> Document:
    """The imported README with vpt-tracker's own changes replayed: venue upgrades on
    imported entries first (their indexes are those of the import), then added entries
    in the order they were added."""
    doc = parse(catalogue.source_text)
    rows = list(catalogue.entries)
    for row in rows:
        if row.state == "updated" and row.raw is not None:
            doc.update_entry(
                int((row.extra or {}).get("index", row.position)), venue=row.venue, year=row.year
            )
    for row in sorted((r for r in rows if r.state == "added"), key=lambda r: r.id):
        doc.insert_entry(_new_entry(row), list(row.section_path))
    return doc


_DOCUMENTS = "vpt_tracker.catalogue.documents"


def _fingerprint(catalogue: CatalogueRow) -> tuple[object, ...]:
    """What `_document` depends on besides the source text: the rows vpt-tracker changed."""
    return (
        catalogue.source_sha256,
        tuple(
            (row.id, row.state, row.venue, row.year, tuple(row.section_path or []))
            for row in catalogue.entries
            if row.state != "imported"
        ),
    )


def _session_document(session: Session, catalogue: CatalogueRow) -> Document:
    """`_document`, cached in the session while the catalogue's changed rows stay the same.

    Promotion adds entries one by one; rebuilding the document for each would replay every
    earlier addition again (quadratic in the number of additions). The cache is keyed by a
    fingerprint of the rows, so any other change to them (an undo that deletes a row, a
    re-import) simply misses the cache and rebuilds.
    """
    cache: dict[int, tuple[tuple[object, ...], Document]] = session.info.setdefault(_DOCUMENTS, {})
    fingerprint = _fingerprint(catalogue)
    cached = cache.get(catalogue.id)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    doc = catalogue_document(catalogue)
    cache[catalogue.id] = (fingerprint, doc)
    return doc


def _remember(session: Session, catalogue: CatalogueRow, doc: Document) -> None:
    session.info.setdefault(_DOCUMENTS, {})[catalogue.id] = (_fingerprint(catalogue), doc)


def _forget(session: Session, catalogue: CatalogueRow) -> None:
    session.info.get(_DOCUMENTS, {}).pop(catalogue.id, None)


def render_catalogue(session: Session, name: str) -> str:
    return _session_document(session, get_catalogue(session, name)).render()


def add_entry(
    session: Session,
    catalogue_name: str,
    new: NewEntry,
    *,
    section_path: list[str],
    labels: list[str],
    paper_id: int | None = None,
    candidate_id: int | None = None,
) -> EntryRow:
    """Record a new entry (state "added"); it appears in the next render. The section and
    the entry are checked now by rendering, so a bad section fails here, not at publish."""
    catalogue = get_catalogue(session, catalogue_name)
    doc = _session_document(session, catalogue)
    try:
        placed = doc.insert_entry(new, section_path)
    except Exception:
        _forget(session, catalogue)  # the cached document may be half-edited
        raise
    row = EntryRow(
        catalogue=catalogue,
        paper_id=paper_id,
        candidate_id=candidate_id,
        position=len(catalogue.entries),
        section_path=list(placed.section_path),
        labels=list(labels),
        badges=list(new.badges),
        title=new.title,
        title_key=normalize.title_key(new.title)[:512],
        short_name=_clipped(new.short_name, 255),
        venue=_clipped(new.venue, 128),
        year=new.year,
        paper_url=new.paper_url,
        code_url=new.code_url,
        arxiv_id=normalize.arxiv_id(new.paper_url) if new.paper_url else None,
        raw=None,
        line=None,
        state="added",
        extra={"kind": placed.kind, "style": placed.style, "cells": dict(new.cells)},
    )
    session.add(row)
    session.flush()
    _remember(session, catalogue, doc)
    return row


def upgrade_entry(session: Session, entry_id: int, *, venue: str, year: int | None) -> EntryRow:
    """A venue upgrade ("arXiv 2024" -> "CVPR 2025"); only that text changes in the README."""
    row = session.get(EntryRow, entry_id)
    if row is None:
        raise UserError(f"no catalogue entry with id {entry_id}")
    old_venue, old_year = row.venue, row.year
    row.venue, row.year = venue, year if year is not None else row.year
    if row.state == "imported":
        row.state = "updated"
        row.extra = {**(row.extra or {}), "index": row.position, "previous": [old_venue, old_year]}
    try:
        # Fails now, with a clear message, if the text cannot take it.
        _session_document(session, row.catalogue)
    except UserError:
        row.venue, row.year = old_venue, old_year
        _forget(session, row.catalogue)
        raise
    session.flush()
    return row


def revert_upgrade(session: Session, entry_id: int) -> EntryRow:
    """Undo `upgrade_entry`: the entry shows the venue and year it was imported with again,
    and is an imported entry, so that no pull request carries an upgrade nobody accepted."""
    row = session.get(EntryRow, entry_id)
    if row is None:
        raise UserError(f"no catalogue entry with id {entry_id}")
    if row.state != "updated":
        return row
    extra = dict(row.extra or {})
    previous = extra.pop("previous", None)
    extra.pop("index", None)  # an imported entry's index is its position
    extra.pop("pull_request", None)
    if isinstance(previous, list) and len(previous) == 2:
        row.venue, row.year = previous
    row.state = "imported"
    row.extra = extra
    session.flush()
    return row


def catalogue_stats(session: Session, name: str) -> dict[str, Any]:
    """Entries per section and label, venues, years, and missing links, for `catalogue stats`."""
    catalogue = get_catalogue(session, name)
    rows = list(catalogue.entries)
    sections = Counter(section_name(r.section_path) for r in rows)
    labels = Counter(label for r in rows for label in (r.labels or []))
    venues = Counter(r.venue or "(none)" for r in rows)
    years = Counter(str(r.year) if r.year else "(none)" for r in rows)
    return {
        "catalogue": catalogue.name,
        "preset": catalogue.preset,
        "entries": len(rows),
        "added": sum(1 for r in rows if r.state == "added"),
        "updated": sum(1 for r in rows if r.state == "updated"),
        "sections": dict(sections),
        "labels": dict(labels.most_common()),
        "venues": dict(venues.most_common()),
        "years": dict(sorted(years.items())),
        "without_paper_link": sum(1 for r in rows if not r.paper_url),
        "without_code_link": sum(1 for r in rows if not r.code_url),
        "without_any_link": sum(1 for r in rows if not r.paper_url and not r.code_url),
    }
