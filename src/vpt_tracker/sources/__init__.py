"""Paper sources: each turns a time window into pages of `RawRecord`s (see `base.py`).

Sources import only `models`, `normalize`, `http`, `errors` and `config`, never the store:
ingestion decides what is new. What a source may skip because the store has it comes in as
a callback from the caller (`known_abstract` for CVF).
"""

from __future__ import annotations

from collections.abc import Callable

from vpt_tracker.config import Settings
from vpt_tracker.http import HttpClient
from vpt_tracker.sources.arxiv_api import ArxivApiSource
from vpt_tracker.sources.arxiv_rss import ArxivRssSource
from vpt_tracker.sources.base import Source, SourceError
from vpt_tracker.sources.cvf import CvfSource
from vpt_tracker.sources.openreview import OpenReviewSource

SOURCE_NAMES = ("arxiv_api", "arxiv_rss", "openreview", "cvf")

__all__ = [
    "SOURCE_NAMES",
    "ArxivApiSource",
    "ArxivRssSource",
    "CvfSource",
    "OpenReviewSource",
    "Source",
    "SourceError",
    "build_source",
    "build_sources",
]


def build_source(
    name: str,
    settings: Settings,
    client: HttpClient,
    *,
    known_abstract: Callable[[str], bool] | None = None,
    page_stored: Callable[[str], bool] | None = None,
) -> Source:
    """One source by name, whether enabled or not (for `vpt-tracker fetch NAME`).

    `known_abstract(key)` says whether the paper with that key, a canonical CVF page URL or a
    (versionless) arXiv id, is stored with its abstract; CVF then skips that paper's page.
    Without it every page is fetched. `page_stored(url)` says whether a CVF sighting of that
    page is stored (of a paper with an abstract); CVF then does not yield the paper again.
    """
    config = settings.sources
    if name == "arxiv_api":
        return ArxivApiSource(config.arxiv_api, client)
    if name == "arxiv_rss":
        return ArxivRssSource(config.arxiv_rss, client)
    if name == "openreview":
        return OpenReviewSource(config.openreview, client)
    if name == "cvf":
        return CvfSource(config.cvf, client, known_abstract=known_abstract, page_stored=page_stored)
    raise ValueError(f"unknown source {name!r}; known sources: {', '.join(SOURCE_NAMES)}")


def build_sources(
    settings: Settings,
    client: HttpClient,
    *,
    known_abstract: Callable[[str], bool] | None = None,
    page_stored: Callable[[str], bool] | None = None,
) -> list[Source]:
    """The enabled sources, in a fixed order (arXiv first: venues then upgrade its preprints,
    and CVF need not fetch the pages of preprints the arXiv sources stored; see `build_source`)."""
    return [
        build_source(name, settings, client, known_abstract=known_abstract, page_stored=page_stored)
        for name in enabled_source_names(settings)
    ]


def enabled_source_names(settings: Settings) -> list[str]:
    """The names of the sources a run fetches, in their order (the others' queued windows wait)."""
    enabled = {
        "arxiv_api": settings.sources.arxiv_api.enabled,
        "arxiv_rss": settings.sources.arxiv_rss.enabled,
        "openreview": settings.sources.openreview.enabled,
        "cvf": settings.sources.cvf.enabled,
    }
    return [name for name in SOURCE_NAMES if enabled[name]]
