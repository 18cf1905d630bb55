"""Take in a README that changed upstream since import, keeping vpt-tracker's own changes.

Maintainers edit their lists by hand, and they merge our pull requests. Either way the
README on the base branch is no longer the text the catalogue was imported from. Pushing
our render would overwrite their edits, so instead the upstream text becomes the new
base (`catalogues.source_text`) and our changes are replayed on it:

- an added entry that upstream now lists (our merged PR, or a maintainer who was
  faster) is absorbed: the upstream line wins and keeps the candidate link;
- an added entry upstream does not list stays added, in its section (re-placed through
  the preset if the section was renamed, dropped only if no section fits); a dropped
  entry's candidate is `accepted` again, even if its pull request was opened, so that
  promotion tries it again (a relabel, or the section back, places it) and it can be
  rejected;
- a venue upgrade stays pending only while upstream still shows the preprint venue;
  upstream's own venue, or an entry upstream deleted, wins.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from vpt_tracker import normalize
from vpt_tracker.catalogue.markdown import ParsedEntry, parse
from vpt_tracker.catalogue.service import catalogue_document, entry_labels, entry_row, get_catalogue
from vpt_tracker.classify.presets import SHIPPED, Presets
from vpt_tracker.classify.taxonomy import Preset
from vpt_tracker.errors import UserError
from vpt_tracker.models import CandidateStatus
from vpt_tracker.store.tables import CandidateRow, EntryRow


@dataclass
class Rebase:
    """What happened to vpt-tracker's changes when upstream's README was taken in."""

    kept_added: list[str] = field(default_factory=list)
    kept_updated: list[str] = field(default_factory=list)
    absorbed: list[str] = field(default_factory=list)  # upstream has them now
    dropped: list[str] = field(default_factory=list)  # with the reason

    def summary(self) -> str:
        parts = [
            f"kept {len(self.kept_added)} added and {len(self.kept_updated)} updated entries",
            f"{len(self.absorbed)} already upstream",
        ]
        if self.dropped:
            parts.append(f"dropped {len(self.dropped)}: " + "; ".join(self.dropped))
        return ", ".join(parts)


def entry_key(title: str) -> str:
    """What tells an entry's title from another's: the folded title, else (a title with no
    Latin letter or digit, "视觉提示学习综述", folds to nothing) the title as written, case
    folded. With no key, our merged entry of such a paper was not found upstream and the next
    pull request added it a second time."""
    return (normalize.title_key(title) or " ".join(title.casefold().split()))[:512]


def _find(parsed: list[ParsedEntry], row: EntryRow, taken: set[int]) -> ParsedEntry | None:
    """The upstream entry for one of our rows: by arXiv id, by paper link, then by folded title.

    The link matters where a table names papers ("LoGoPrompt", `markdown._names_papers`):
    our row keeps the whole title, the merged README shows the name. A row without a link
    is found by its name there as a last resort.

    An entry another of our rows was matched to (`taken`) is not matched again: a paper the
    list shows twice (synbol's) has both lines upgraded, and both rows found the first line,
    so the second line lost its upgrade at the first upstream edit and the list gave the
    paper two venues again.
    """
    parsed = [p for p in parsed if p.index not in taken]
    if row.arxiv_id:
        hit = next((p for p in parsed if p.arxiv_id == row.arxiv_id), None)
        if hit is not None:
            return hit
    if row.paper_url:
        hit = next((p for p in parsed if p.paper_url == row.paper_url), None)
        if hit is not None:
            return hit
    keys = {entry_key(row.title)}
    if row.short_name and not row.paper_url:
        keys.add(entry_key(row.short_name))
    keys.discard("")
    return next((p for p in parsed if entry_key(p.title) in keys), None)


def rebase_catalogue(
    session: Session,
    name: str,
    upstream_text: str,
    upstream_commit: str | None,
    *,
    now: datetime | None = None,
    presets: Presets = SHIPPED,
) -> Rebase:
    """Make `upstream_text` the catalogue's base and replay our changes on it (caller's transaction)."""
    catalogue = get_catalogue(session, name)
    preset = presets.load(catalogue.preset) if catalogue.preset else None
    doc = parse(upstream_text)
    result = Rebase()

    old_rows = list(catalogue.entries)
    ours = [r for r in old_rows if r.state in ("added", "updated")]
    links = {  # paper and candidate links of imported rows survive the re-import
        (r.arxiv_id or entry_key(r.title)): (r.paper_id, r.candidate_id)
        for r in old_rows
        if r.state == "imported"
    }
    fresh: list[EntryRow] = []
    for parsed in doc.entries:
        row = entry_row(parsed, entry_labels(preset, parsed))
        row.paper_id, row.candidate_id = links.get(row.arxiv_id or entry_key(row.title), (None, None))
        fresh.append(row)

    replay_added: list[EntryRow] = []
    taken: set[int] = set()
    for row in ours:
        upstream = _find(doc.entries, row, taken)
        if upstream is not None:
            taken.add(upstream.index)
        if row.state == "added":
            if upstream is not None:
                target = fresh[upstream.index]
                target.paper_id = target.paper_id or row.paper_id
                target.candidate_id = target.candidate_id or row.candidate_id
                result.absorbed.append(row.title)
            else:
                replay_added.append(row)
            continue
        # an update of an imported entry
        if upstream is None:
            result.dropped.append(f"{row.title!r}: upstream removed the entry")
            continue
        target = fresh[upstream.index]
        target.paper_id = target.paper_id or row.paper_id
        target.candidate_id = target.candidate_id or row.candidate_id
        if not normalize.is_preprint_venue(upstream.venue):
            result.absorbed.append(row.title)
            continue
        target.state = "updated"
        target.extra = {
            **(target.extra or {}),
            "index": upstream.index,
            "previous": [target.venue, target.year],
        }
        target.venue, target.year = row.venue, row.year if row.year is not None else target.year
        result.kept_updated.append(row.title)

    for row in old_rows:
        if row not in replay_added:
            catalogue.entries.remove(row)
            session.delete(row)
    session.flush()
    for row in fresh:
        catalogue.entries.append(row)
    catalogue.source_text = upstream_text
    catalogue.source_sha256 = hashlib.sha256(upstream_text.encode("utf-8")).hexdigest()
    catalogue.upstream_commit = upstream_commit
    catalogue.imported_at = now or datetime.now(UTC)
    session.flush()

    for row in sorted(replay_added, key=lambda r: r.id):
        row.position = len(fresh) + len(result.kept_added)
        if not _placeable(session, row, preset):
            result.dropped.append(f"{row.title!r}: no section of the new README takes it")
            _unpublish(session, row.candidate_id)
            catalogue.entries.remove(row)
            session.delete(row)
            session.flush()
            continue
        result.kept_added.append(row.title)
    session.flush()
    return result


def _unpublish(session: Session, candidate_id: int | None) -> None:
    """A candidate whose added entry left the list is not published: the list never showed
    it. Left `published`, promotion (which takes accepted candidates) never proposed it
    again, and a reject was refused as if the paper were in the list upstream."""
    candidate = session.get(CandidateRow, candidate_id) if candidate_id is not None else None
    if candidate is not None and candidate.status == CandidateStatus.PUBLISHED:
        candidate.status = CandidateStatus.ACCEPTED.value
        candidate.published_at = None


def _placeable(session: Session, row: EntryRow, preset: Preset | None) -> bool:
    """Whether the added row still renders; if its section is gone, try the preset's
    placement for its labels before giving up."""
    try:
        catalogue_document(row.catalogue)
        return True
    except UserError:
        pass
    section = preset.section_for(list(row.labels or []), year=row.year) if preset else None
    if section is None or section == list(row.section_path or []):
        return False
    row.section_path = section
    session.flush()
    try:
        catalogue_document(row.catalogue)
        return True
    except UserError:
        return False
