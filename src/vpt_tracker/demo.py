"""`vpt-tracker demo`: the whole product, offline, on recorded feeds, in seconds.

Nothing here is a shortcut: the demo starts `ReplayServer` on the bundled recordings, points
the sources' base URLs at it through ordinary settings, and then calls the same use cases
as the real commands (catalogue import, `pipeline.nightly`, the review queue, the digest,
`publish --dry-run`). The only demo-specific choice is *which night* it replays: the day
of the newest recorded arXiv RSS announcement, passed as the nightly run's window.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine

from vpt_tracker.classify.taxonomy import Preset
from vpt_tracker.config import (
    ArxivApiConfig,
    ArxivRssConfig,
    CatalogueConfig,
    CvfConference,
    CvfConfig,
    HttpConfig,
    OpenReviewConfig,
    OpenReviewVenue,
    Settings,
    SmtpConfig,
    SourcesConfig,
    schedule_timezone,
)
from vpt_tracker.replay import ReplayServer, default_root

Echo = Callable[[str], None]

# What the bundled recordings hold (see replay_data/README.md).
OPENREVIEW_VENUES = [OpenReviewVenue(venue_id="ICLR.cc/2024/Conference", name="ICLR", year=2024)]
CVF_CONFERENCES = [CvfConference(name="CVPR", year=2022), CvfConference(name="ICCV", year=2023)]
REVIEWER = "demo"
#: The shipped presets, each with a bundled list (`demo_data/lists/NAME.md`) the demo imports.
PRESETS = ("awesome-vpt", "prompt-adaptation", "generalizable-vlm")


@dataclass
class DemoResult:
    database: Path
    run_id: int
    run_outcome: str
    queue: dict[str, int]  # catalogue -> pending candidates
    accepted: dict[str, str] = field(default_factory=dict)  # catalogue -> accepted title
    eml: Path | None = None
    html: Path | None = None
    diffs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def bundled_lists() -> Path:
    return Path(str(resources.files("vpt_tracker") / "demo_data" / "lists"))


def replay_day(root: Path) -> tuple[date, list[str]]:
    """The newest recorded RSS announcement day, and the recorded categories."""
    rss = root / "arxiv_rss"
    categories = sorted(path.name for path in rss.iterdir() if path.is_dir())
    days = sorted(file.stem for category in categories for file in (rss / category).glob("*.xml"))
    if not days:
        raise FileNotFoundError(f"no recorded RSS feeds under {rss}")
    return date.fromisoformat(days[-1]), categories


def demo_settings(server: ReplayServer, output_dir: Path, categories: list[str]) -> Settings:
    """Production settings with local base URLs: the replay server stands in for the web."""
    urls = server.urls()
    return Settings(
        database_url=f"sqlite:///{output_dir / 'demo.db'}",
        data_dir=output_dir,
        # The politeness intervals are per host; the replay server is a local host of our own.
        http=HttpConfig(default_min_interval=0.0, min_interval={}, host_groups={}, max_retries=1, timeout=15),
        sources=SourcesConfig(
            arxiv_api=ArxivApiConfig(base_url=urls["arxiv_api"]),
            arxiv_rss=ArxivRssConfig(base_url=urls["arxiv_rss"], categories=categories),
            openreview=OpenReviewConfig(base_url=urls["openreview"], venues=OPENREVIEW_VENUES),
            cvf=CvfConfig(base_url=urls["cvf"], conferences=CVF_CONFERENCES),
        ),
        catalogues=[
            CatalogueConfig(name=preset, preset=preset, readme=Path("README.md")) for preset in PRESETS
        ],
        smtp=SmtpConfig(
            sender="vpt-tracker demo <demo@vpt-tracker.invalid>", recipients=["maintainers@example.org"]
        ),
    )


def _fresh(output_dir: Path) -> None:
    """Remove what an earlier demo left: only the files the demo writes, by name.

    The folder may hold anything else (`--output-dir ~/work`): other `.diff` files and a
    `repos` folder of clones are a maintainer's, not the demo's.
    """
    from vpt_tracker.errors import UserError

    names = ["demo.db", "demo.db-wal", "demo.db-shm", "digest.eml", "digest.html"]
    paths = [output_dir / name for name in [*names, *(f"{preset}.diff" for preset in PRESETS)]]
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # A folder in a demo file's place is refused before any file is removed.
        for path in paths:
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        for path in paths:
            path.unlink(missing_ok=True)
    except OSError as exc:  # under a file, a folder in a file's place: one line, not a traceback
        raise UserError(
            f"cannot use {output_dir} for the demo: {exc.filename}: {exc.strerror or exc}"
        ) from None


def _without_model(settings: Settings, echo: Echo) -> list[str]:
    """The catalogues with no shipped or trained model (the nightly run cannot score them)."""
    from vpt_tracker.enqueue import load_model
    from vpt_tracker.errors import UserError

    missing = []
    for catalogue in settings.catalogues:
        try:
            _model, where = load_model(settings, catalogue.name, catalogue.preset)
        except UserError:
            missing.append(catalogue.name)
            echo(f"no shipped model for {catalogue.name}: it is trained from the store after the run")
            continue
        echo(f"model for {catalogue.name}: {where}")
    return missing


def _train_and_score(engine: Engine, settings: Settings, names: list[str], echo: Echo) -> None:
    """Train the missing models from the catalogue entries, then score every paper."""
    from vpt_tracker.enqueue import score_and_enqueue, train_catalogue
    from vpt_tracker.errors import UserError

    for name in names:
        try:
            _model, where = train_catalogue(engine, name, settings=settings)
            stats = score_and_enqueue(engine, name, None, settings=settings)
        except (UserError, ValueError) as exc:
            echo(f"  {name}: cannot train a model here ({exc})")
            continue
        echo(f"  trained {name} into {where}; queued {stats.queued} of {stats.scored} papers")


def _print_queue(engine: Engine, settings: Settings, top: int, echo: Echo) -> dict[str, int]:
    from vpt_tracker.review.queue import ReviewQueue

    sizes: dict[str, int] = {}
    for catalogue in settings.catalogues:
        queue = ReviewQueue(engine, REVIEWER, catalogue.name, presets=settings.presets)
        sizes[catalogue.name] = queue.count()
        echo(f"\n{catalogue.name}: {sizes[catalogue.name]} pending candidates; the top {top}:")
        for item in queue.listing(limit=top):
            labels = ", ".join(item.proposed_with_scores())
            venue = f" [{item.venue_year}]" if item.venue_year else ""
            echo(f"  {item.relevance:.2f}  {item.title}{venue}")
            echo(f"        labels: {labels or '(none proposed)'}")
    return sizes


def run_demo(output_dir: Path, *, top: int = 3, echo: Echo = print) -> DemoResult:
    """Run the demo into `output_dir` and return what it produced."""
    from vpt_tracker.catalogue.service import import_catalogue
    from vpt_tracker.digest import Week, build_digest, render, to_message
    from vpt_tracker.models import Window
    from vpt_tracker.pipeline import nightly
    from vpt_tracker.publish import dry_run
    from vpt_tracker.review.queue import ReviewQueue
    from vpt_tracker.store import make_engine
    from vpt_tracker.store.migrate import upgrade

    started = time.monotonic()
    output_dir = output_dir.resolve()
    _fresh(output_dir)
    root = default_root()
    day, categories = replay_day(root)
    with ReplayServer(root) as server:
        settings = demo_settings(server, output_dir, categories)
        engine = make_engine(settings.database_url)
        try:
            upgrade(engine)
            echo(f"replay server on {server.base_url}; database {output_dir / 'demo.db'}")
            for catalogue in settings.catalogues:
                imported = import_catalogue(
                    engine,
                    catalogue.name,
                    (bundled_lists() / f"{catalogue.name}.md").read_text(encoding="utf-8"),
                    preset=catalogue.preset,
                    readme_path=str(catalogue.readme),
                    presets=settings.presets,
                )
                echo(imported.summary())

            untrained = _without_model(settings, echo)
            echo(f"\nnightly run over the recorded night of {day.isoformat()} ...")
            result = nightly(settings, engine, window=Window.for_days(day, day))
            for name, counts in sorted(result.counts["sources"].items()):
                state = result.health[name]
                health = "healthy" if state["healthy"] else f"unhealthy: {state['reason']}"
                echo(f"  {name}: {counts['records']} records, {counts['new_papers']} new papers ({health})")
            for key, message in sorted(result.errors.items()):
                echo(f"  error {key}: {message}")
            echo(f"run {result.run_id}: {result.outcome.value}")
            _train_and_score(engine, settings, untrained, echo)

            sizes = _print_queue(engine, settings, top, echo)

            outcome = DemoResult(output_dir / "demo.db", result.run_id, result.outcome.value, sizes)
            echo("")
            for catalogue in settings.catalogues:
                queue = ReviewQueue(engine, REVIEWER, catalogue.name, presets=settings.presets)
                first = queue.next()
                if first is None:
                    continue
                preset = settings.presets.load(catalogue.preset) if catalogue.preset else None
                labels = _reviewer_labels(first.proposed_labels, first.label_scores, preset)
                queue.accept(first.candidate_id, labels)
                outcome.accepted[catalogue.name] = first.title
                echo(f"accepted for {catalogue.name} as reviewer {REVIEWER!r}: {first.title}")

            now = datetime.now(UTC)
            week = Week.of(now, schedule_timezone(settings))
            digest = build_digest(engine, week, now=now, settings=settings)
            outcome.eml = output_dir / "digest.eml"
            outcome.html = output_dir / "digest.html"
            outcome.eml.write_bytes(bytes(to_message(digest, settings)))
            outcome.html.write_text(render(digest)[1], encoding="utf-8")
            echo(f"\ndigest {digest.week.label}: {digest.subject}")
            echo(f"  wrote {outcome.eml} and {outcome.html}")

            for name in outcome.accepted:
                plan = dry_run(engine, name, settings.presets)
                path = output_dir / f"{name}.diff"
                path.write_text(plan.diff, encoding="utf-8")
                outcome.diffs[name] = path
                echo(f"\npublish {name} --dry-run: {plan.title}")
                echo(plan.diff.rstrip() or "  (no change)")
                for skipped in plan.skipped:
                    echo(f"  not added: {skipped.title}: {skipped.reason}")
        finally:
            engine.dispose()
    outcome.seconds = time.monotonic() - started
    echo(f"\ndemo finished in {outcome.seconds:.1f}s; everything is in {output_dir}")
    return outcome


def _reviewer_labels(proposed: list[str], scores: dict[str, float], preset: Preset | None) -> list[str]:
    """The labels the demo's reviewer accepts with, as a maintainer would in the label editor.

    The editor is pre-filled with the proposals; when none of them gives the paper a place in
    the list (no label passed its threshold, or only labels the list has no section for), the
    reviewer adds the most likely label that does have a section.
    """
    if preset is None:
        return list(proposed)
    if preset.section_for(list(proposed), year=2000) is not None:
        return list(proposed)
    placeable = [label for label in scores if preset.section_for([label], year=2000) is not None]
    if not placeable:
        return list(proposed)
    return [*proposed, max(placeable, key=lambda label: scores[label])]
