"""The SQLAlchemy tables: the edge where the plain dataclasses meet the database.

Every table of DESIGN.md §4 is here, plus the small ones that operations need
(`refetch_windows`, `scoring_backlog`, `digests`, `pull_requests`, `identity_generation`,
`publications`, `venue_upgrades`).
JSON columns hold lists and maps that are only ever read whole. Migrations in `db/` must
match these models; a test checks it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from vpt_tracker import normalize

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite drops the offset, so values are stored as UTC and read back with `tzinfo=UTC`.
    PostgreSQL hands them back in the session's time zone (the server's `TimeZone`, often
    the local one), so they are turned to UTC: `runs` and the digest print them as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PaperRow(Base):
    """A canonical paper. Its id is never given to another paper, on SQLite too (AUTOINCREMENT):
    a merged-away paper's id is remembered in logs, digests, exports and the saved identity
    index, and SQLite otherwise hands the highest id out again once its row is deleted."""

    __tablename__ = "papers"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it as is)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    title_key: Mapped[str] = mapped_column(String(512), index=True)
    first_author_key: Mapped[str] = mapped_column(String(128), default="")
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    year: Mapped[int | None] = mapped_column(Integer)
    venue: Mapped[str | None] = mapped_column(String(128))
    previous_venue: Mapped[str | None] = mapped_column(String(128))
    venue_upgraded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    arxiv_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    doi: Mapped[str | None] = mapped_column(String(normalize.DOI_MAX), unique=True)
    openreview_id: Mapped[str | None] = mapped_column(String(normalize.OPENREVIEW_ID_MAX), unique=True)
    cvf_url: Mapped[str | None] = mapped_column(String(normalize.CVF_URL_MAX), unique=True)
    code_url: Mapped[str | None] = mapped_column(Text)
    pdf_url: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    journal_ref: Mapped[str | None] = mapped_column(Text)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    primary_category: Mapped[str | None] = mapped_column(String(normalize.CATEGORY_MAX))
    full_text: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Indexed: the identity index cache compares max(modified_at) on every page (ingest._IndexCache).
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, index=True)

    sightings: Mapped[list[SightingRow]] = relationship(back_populates="paper")


class IdentityGenerationRow(Base):
    """One row: a counter that every write changing the papers' identity raises in its own
    transaction (ingestion, `papers split`, `merge`, `rebuild`).

    A saved identity index is valid while the counter is what it was saved with. The papers'
    latest modification time was the check before; it comes from the writer's clock, and a
    write from a host whose clock is behind left it unchanged. A counter only goes forward
    (and back with a rolled-back transaction, which is right: so does what it counts).
    """

    __tablename__ = "identity_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class SightingRow(Base):
    """Every raw record from every source; nothing fetched is thrown away."""

    __tablename__ = "sightings"
    __table_args__ = (UniqueConstraint("source", "source_id", "payload_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(512))
    payload_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))

    paper: Mapped[PaperRow] = relationship(back_populates="sightings")


class CatalogueRow(Base):
    """A curated list. `source_text` is the README as imported, the base of lossless renders.

    Its id is never given to another catalogue, on SQLite too (AUTOINCREMENT; see PaperRow):
    a removed catalogue's id is held by an open review screen, in log lines and in
    `venue_upgrades.listed_in`, and must not name the next catalogue imported."""

    __tablename__ = "catalogues"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it as is)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    preset: Mapped[str | None] = mapped_column(String(64))
    readme_path: Mapped[str | None] = mapped_column(Text)
    github_repo: Mapped[str | None] = mapped_column(String(255))
    source_text: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))
    upstream_commit: Mapped[str | None] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    entries: Mapped[list[EntryRow]] = relationship(
        back_populates="catalogue", cascade="all, delete-orphan", order_by="EntryRow.position"
    )


class EntryRow(Base):
    """A paper in a catalogue, with its labels and its place in the README.

    `position` orders entries within the document; `raw` is the entry's exact text as
    imported (None for an entry added by vpt-tracker and not yet published).
    """

    __tablename__ = "entries"
    # Ids never reused (see PaperRow): a retracted entry's id is printed and kept in plans.
    __table_args__ = (
        Index("ix_entries_catalogue_position", "catalogue_id", "position"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id", ondelete="CASCADE"))
    paper_id: Mapped[int | None] = mapped_column(ForeignKey("papers.id", ondelete="SET NULL"), index=True)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id", ondelete="SET NULL"))
    position: Mapped[int] = mapped_column(Integer)
    section_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    badges: Mapped[list[str]] = mapped_column(JSON, default=list)
    title: Mapped[str] = mapped_column(Text)
    title_key: Mapped[str] = mapped_column(String(512), index=True)
    short_name: Mapped[str | None] = mapped_column(String(255))
    venue: Mapped[str | None] = mapped_column(String(128))
    year: Mapped[int | None] = mapped_column(Integer)
    paper_url: Mapped[str | None] = mapped_column(Text)
    code_url: Mapped[str | None] = mapped_column(Text)
    arxiv_id: Mapped[str | None] = mapped_column(String(32), index=True)
    raw: Mapped[str | None] = mapped_column(Text)
    line: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="imported")  # imported / added / updated
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    catalogue: Mapped[CatalogueRow] = relationship(back_populates="entries")


class CandidateRow(Base):
    """A paper proposed for a catalogue. `version` is the optimistic lock between reviewers."""

    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("paper_id", "catalogue_id"),
        Index("ix_candidates_queue", "catalogue_id", "status", "relevance"),
        # Ids never reused (see PaperRow): a reviewer's screen holds the id of a candidate
        # that a merge drops, and must be refused, not applied to another paper's candidate.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    relevance: Mapped[float] = mapped_column(Float, default=0.0)
    label_scores: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    proposed_labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    final_labels: Mapped[list[str] | None] = mapped_column(JSON)
    base_to_novel: Mapped[float | None] = mapped_column(Float)
    base_to_novel_flag: Mapped[bool | None] = mapped_column(Boolean)  # at the model's threshold
    low_confidence: Mapped[bool] = mapped_column(Boolean, default=False)
    rule: Mapped[str | None] = mapped_column(Text)  # the keyword rule that queued it, if any
    reason: Mapped[str | None] = mapped_column(Text)  # the reviewer's reason (reject, defer)
    reviewer: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it as is)

    paper: Mapped[PaperRow] = relationship()
    catalogue: Mapped[CatalogueRow] = relationship()


class DecisionRow(Base):
    """The audit log of review actions; undo reads it."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id", ondelete="SET NULL"))


class PublicationRow(Base):
    """A candidate's paper put in its catalogue's list by vpt-tracker, when: the pull request
    that proposes it was opened or updated (`pull_request`), or our pull request was merged
    (None: the run that opened it stopped before recording it).

    A record of what happened, never changed: `candidates.published_at` is cleared when the
    entry leaves the list (upstream dropped its section) and set again by the next publish,
    so it tells only the last one. The digest reads the publications of a week from here.
    Not review-log rows: the review log holds the reviewers' decisions, which `review undo`
    walks and reverts; a publish is no reviewer's and cannot be undone.
    """

    __tablename__ = "publications"
    __table_args__ = (Index("ix_publications_catalogue_id_at", "catalogue_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    pull_request: Mapped[int | None] = mapped_column(Integer)


class VenueUpgradeRow(Base):
    """A paper's preprint venue upgraded to a venue by a sighting, when, from what to what.

    `papers.previous_venue` and `venue_upgraded_at` hold the last upgrade only (a split that
    takes the venue sighting away and a later record upgrade a paper twice). `listed_in`: the
    ids of the catalogues whose list held the paper at the upgrade and did not show a venue
    for it already (an imported entry with a venue: the upgrade is no news there), so that a
    digest built after its week does not depend on the list as it is at the build.
    """

    __tablename__ = "venue_upgrades"
    __table_args__ = (Index("ix_venue_upgrades_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    previous_venue: Mapped[str | None] = mapped_column(String(128))
    venue: Mapped[str | None] = mapped_column(String(128))
    year: Mapped[int | None] = mapped_column(Integer)
    listed_in: Mapped[list[int]] = mapped_column(JSON, default=list)


class CursorRow(Base):
    """A per-source watermark; it advances only in the transaction that stores what it covers."""

    __tablename__ = "cursors"
    __table_args__ = (UniqueConstraint("source", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class RunRow(Base):
    """One pipeline run: counts per source, errors, duration and an outcome."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # nightly / backfill / fetch / ingest
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    duration_s: Mapped[float | None] = mapped_column(Float)


class RefetchWindowRow(Base):
    """A window that a source missed (error or suspiciously few records), fetched again later."""

    __tablename__ = "refetch_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ScoringBacklogRow(Base):
    """A paper a catalogue owes a score: its scoring failed in the run that stored the paper,
    or `fetch` stored it outside any run (`run_id` None).

    `refetch_windows` is the same idea for a source. A row is written when the catalogue's
    scoring fails and stamped `scored_at` in the transaction that writes the catalogue's
    candidates, so a crash in between leaves it owed for the next run, and nothing is scored
    into the queue twice. A scored row is kept (for `SCORED_KEPT`, see `enqueue.clear_backlog`)
    so that a digest built after its week counts what was owed at the week's end, scored since
    or not; "still owed" is `scored_at IS NULL`, at most one such row per catalogue and paper
    (a paper scored may be owed again: a new row). The catalogue is kept by name: a catalogue
    in the config that is not imported yet owes too.
    """

    __tablename__ = "scoring_backlog"
    __table_args__ = (
        Index(
            "uq_scoring_backlog_owed",
            "catalogue",
            "paper_id",
            unique=True,
            sqlite_where=text("scored_at IS NULL"),
            postgresql_where=text("scored_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    catalogue: Mapped[str] = mapped_column(String(128))
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DigestRow(Base):
    """One weekly digest; `status` guards against sending the same week twice."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    week: Mapped[str] = mapped_column(String(10), unique=True)  # ISO week, "2026-W47"
    status: Mapped[str] = mapped_column(String(16), default="built")  # built / sent / failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PullRequestRow(Base):
    """The pull request that publishes a catalogue's accepted papers."""

    __tablename__ = "pull_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id", ondelete="CASCADE"), index=True)
    branch: Mapped[str] = mapped_column(String(255))
    number: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    head_sha: Mapped[str | None] = mapped_column(String(64))
    readme_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
