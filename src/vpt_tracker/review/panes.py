"""The two panes of the review app: the virtual candidate list and the detail view.

Both draw lines (Textual's line API) instead of composing widgets, so their cost depends
on the screen size, not on how many candidates are queued.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vpt_tracker.classify import WORD_TOKEN_PATTERN
from vpt_tracker.review.queue import QueueItem

_TOKEN = re.compile(WORD_TOKEN_PATTERN)


# --------------------------------------------------------------------------- list pane
class CandidateList(ScrollView, can_focus=True, inherit_bindings=False):
    """A virtual list of candidates: only the rows on screen are fetched and drawn.

    It holds the ordered ids and a bounded cache of rows keyed by candidate id, so removing
    a decided candidate (or putting an undone one back) shifts positions without refetching.

    `highlighted` is called with the candidate under the cursor whenever that changes, in the
    same call rather than through a posted message: Textual draws the moved cursor in a frame
    of its own as soon as the key is handled, and a message reaching the screen after that
    leaves the detail pane for the next frame, which its update timer starts 17-33 ms later.
    Called directly, both panes change in the one frame. It gets None while the row under the
    cursor is still being read, and is called again once it is.

    Rows not in hand are asked for, a page at a time, with `fetch(ids, generation)`, which
    reads them off the app's thread and answers with `fill` (or `unanswered_rows`): drawing
    never waits for the database. Meanwhile they are drawn as placeholders. `generation`
    tells the answer for a list since replaced (a filter, an undo) from one for this list.
    """

    PAGE = 200
    CACHE_LIMIT = 5000

    DEFAULT_CSS = """
    CandidateList { width: 3fr; height: 1fr; border: round $primary-darken-2; }
    CandidateList:focus { border: round $accent; }
    """

    def __init__(
        self,
        fetch: Callable[[list[int], int], None],
        highlighted: Callable[[QueueItem | None], None],
        *,
        show_catalogue: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._fetch = fetch
        self._highlighted = highlighted
        self.show_catalogue = show_catalogue  # a view of every catalogue: a paper may be in two
        self.ids: list[int] = []
        self.cursor = 0
        self._rows: dict[int, QueueItem | None] = {}  # None: gone from the database
        self._loading: set[int] = set()  # asked for, not answered yet
        self._failed: set[int] = set()  # asked for, and the database did not answer
        self.generation = 0  # which list the rows asked for belong to: `load` starts another
        self._strips: dict[tuple[int, int, bool, int, str | None], Strip] = {}
        self._removed: list[tuple[int, int]] = []  # (candidate id, position), for undo
        # Rows whose decision waits for the database (candidate id -> "deferring"): drawn so.
        self.waiting: dict[int, str] = {}
        self.unanswered = False  # a row was drawn as a placeholder: the database did not answer

    # data -------------------------------------------------------------
    def load(self, ids: list[int], cursor: int = 0, rows: Iterable[QueueItem] = ()) -> None:
        """Show another list; `rows` are those already read with it (no placeholder for them)."""
        self.ids = ids
        self.generation += 1
        self._rows = {item.candidate_id: item for item in rows}
        self._loading.clear()
        self._failed.clear()
        self.unanswered = False
        self._strips.clear()
        self._removed.clear()
        self._moved_to(max(0, min(cursor, len(ids) - 1)))

    def item_at(self, index: int) -> QueueItem | None:
        """The row at `index`; None if there is none, or it is not read yet (then it is asked for)."""
        if not 0 <= index < len(self.ids):
            return None
        candidate_id = self.ids[index]
        if candidate_id not in self._rows:
            if candidate_id not in self._loading and candidate_id not in self._failed:
                self._ask(index)
            return None
        return self._rows[candidate_id]

    def reading(self, index: int) -> bool:
        """Whether the row at `index` waits for the database (asked for, or to be asked again)."""
        return 0 <= index < len(self.ids) and self.ids[index] not in self._rows

    def _ask(self, index: int) -> None:
        if len(self._rows) > self.CACHE_LIMIT:
            self._rows.clear()
        start = index - index % self.PAGE
        wanted = [
            i for i in self.ids[start : start + self.PAGE]
            if i not in self._rows and i not in self._loading and i not in self._failed
        ]  # fmt: skip
        if wanted:
            self._loading.update(wanted)
            self._fetch(wanted, self.generation)

    def fill(self, generation: int, wanted: list[int], fetched: list[QueueItem]) -> None:
        """Take rows read for `fetch`. Only the holes are filled: a row in hand meanwhile (a
        relabel written, an undo put back) is newer than one read before it was written."""
        if generation != self.generation:
            return  # read for a list since replaced
        found = {item.candidate_id: item for item in fetched}
        for candidate_id in wanted:
            self._loading.discard(candidate_id)
            if candidate_id not in self._rows:
                self._rows[candidate_id] = found.get(candidate_id)
        self.refresh()
        if self.ids and self.ids[self.cursor] in wanted:
            self._highlighted(self.current)

    def unanswered_rows(self, generation: int, wanted: list[int]) -> None:
        """The database did not answer for these rows: drawn so until `retry`."""
        if generation != self.generation:
            return
        self._loading.difference_update(wanted)
        self._failed.update(wanted)
        self.unanswered = True
        self.refresh()

    def retry(self) -> None:
        """Ask again for the rows the database did not answer for (it answers again)."""
        self._failed.clear()
        self.unanswered = False
        self.refresh()

    @property
    def current(self) -> QueueItem | None:
        """The highlighted candidate; None where there is none or it is not read yet."""
        return self.item_at(self.cursor)

    def replace(self, item: QueueItem) -> None:
        """Show fresh state for one candidate (e.g. after a conflict)."""
        self._rows[item.candidate_id] = item
        self._strips.clear()
        self.refresh()

    def drop(self, candidate_id: int) -> None:
        """Drop a decided candidate from view. The highlight stays on the candidate it was on
        (the decision, written in the background, may be on a row the reviewer has left), or,
        if it was this one, goes to the next."""
        try:
            position = self.ids.index(candidate_id)
        except ValueError:  # not in this list (any more): a filter since, say
            return
        del self.ids[position]
        self._removed.append((candidate_id, position))
        if position != self.cursor:
            # Another row: the highlighted paper stays highlighted, and its detail as it is.
            self.cursor -= position < self.cursor
            self.virtual_size = Size(self.scrollable_content_region.width, len(self.ids))
            self._follow_cursor()
            self.refresh()
            return
        self._moved_to(min(self.cursor, len(self.ids) - 1) if self.ids else 0)

    def mark_waiting(self, candidate_id: int, doing: str | None) -> None:
        """Draw the row as waiting for the database (`doing`: "deferring"), or no longer."""
        if doing is None:
            self.waiting.pop(candidate_id, None)
        else:
            self.waiting[candidate_id] = doing
        self.refresh()

    def restore(self, candidate_id: int, fresh: QueueItem) -> bool:
        """Put an undone candidate back where this list dropped it; False if it never did."""
        for n in range(len(self._removed) - 1, -1, -1):
            removed_id, position = self._removed[n]
            if removed_id == candidate_id:
                del self._removed[n]
                self.ids.insert(min(position, len(self.ids)), candidate_id)
                self._rows[candidate_id] = fresh
                self._moved_to(min(position, len(self.ids) - 1))
                return True
        return False

    def move(self, delta: int) -> None:
        if not self.ids:
            return
        target = max(0, min(self.cursor + delta, len(self.ids) - 1))
        if target == self.cursor:
            return
        previous, top = self.cursor, self.scroll_offset.y
        self.cursor = target
        self._follow_cursor()
        if self.scroll_offset.y == top:  # only two rows changed: redraw just those
            self.refresh_line(previous)
            self.refresh_line(target)
        else:
            self.refresh()
        self._highlighted(self.current)

    def _moved_to(self, cursor: int) -> None:
        self.cursor = cursor
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.ids))
        self._follow_cursor()
        self.refresh()
        self._highlighted(self.current)

    def _follow_cursor(self) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = round(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    # drawing ----------------------------------------------------------
    def on_resize(self, _event: events.Resize) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.ids))
        self._follow_cursor()

    def render_line(self, y: int) -> Strip:
        index = round(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width
        item = self.item_at(index)
        if item is None and self.reading(index):
            # Not read yet: a placeholder until `fill`. Where the database did not answer (a
            # PostgreSQL restart) it says so, and the next recount asks again.
            text = "(the database did not answer)" if self.ids[index] in self._failed else "reading…"
            style = _SELECTED + Style(dim=True) if index == self.cursor else Style(dim=True)
            return Strip([Segment(_fit(f"  … {text}", width), style)])
        if item is None:
            return Strip.blank(width)
        selected = index == self.cursor
        waiting = self.waiting.get(item.candidate_id)
        key = (item.candidate_id, item.version, selected, width, waiting)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > self.CACHE_LIMIT:
                self._strips.clear()
            base = _SELECTED if selected else _PLAIN
            if waiting is not None:  # "[deferring…]" before the title, dimmed
                item = replace(item, status=f"{waiting}…")
                base += Style(dim=True)
            strip = self._strips[key] = _row_strip(item, width, base, self.show_catalogue)
        return strip


def _fit(text: str, width: int) -> str:
    """`text` in exactly `width` cells: padded, or cut with an ellipsis (nothing in 0 cells)."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…" if width > 0 else ""


def _status_prefix(item: QueueItem) -> str:
    """What a row shows before the title of a candidate that is not pending ("[deferred] ")."""
    return "" if item.status == "pending" else f"[{item.status}] "


#: The cells a title keeps in a row (a third of a wider row; the whole title where it is
#: shorter): the columns beside it give way first, in `_row_columns`.
TITLE_CELLS = 15
#: Labels or a catalogue's name cut to fewer cells than this are dropped, not shown as "l".
_CUT_CELLS = 4


def _row_columns(item: QueueItem, width: int, show_catalogue: bool = False) -> tuple[str, str]:
    """The labels and the venue column (venue and year, and the catalogue in a view of every
    catalogue) that fit beside the title in a row of `width` cells.

    The title keeps `TITLE_CELLS` (a third of a wider row); the other columns give way in
    the order of their use to a reviewer: the labels first (cut, then dropped), then the venue
    (the year stays), then the year; the catalogue's name, which tells apart a paper queued
    for two lists, is cut (to no less than four cells, "gen…") and dropped last. The detail
    pane shows them all. Kept whatever the width, they left a 40-column terminal's list pane
    two cells of title ("V… l  ECCV 2022"); the catalogue's name kept whole, an 80-column one "Se…".
    """
    status = _status_prefix(item)
    free = max(0, width - 7)  # beside the b2n mark and the score
    floor = min(cell_len(status + item.title), free, max(TITLE_CELLS, width // 3))
    room = free - floor  # for "  venue" and " labels"
    labels = ",".join(item.final_labels if item.final_labels is not None else item.proposed_labels)
    catalogue = item.catalogue if show_catalogue else ""
    year = str(item.year) if item.year else ""
    for n, venue in enumerate(dict.fromkeys((item.venue_year, year, ""))):
        if catalogue:
            prefix = f"{venue} · " if venue else ""
            name_room = room - 2 - cell_len(prefix)
            if cell_len(catalogue) <= name_room:
                venue = prefix + catalogue
            elif name_room >= _CUT_CELLS:
                venue = prefix + _fit(catalogue, name_room)
            else:
                continue
        used = cell_len(venue) + 2 if venue else 0
        if used > room:
            continue
        label_text = ""
        if n == 0 and labels:  # dropped before the venue gives way
            cells = min(cell_len(labels), (width - 9 - cell_len(venue)) // 3, room - used - 1)
            if cells >= min(cell_len(labels), _CUT_CELLS):
                label_text = set_cell_size(labels, cells)
        return label_text, venue
    return "", ""


_SELECTED = Style(bgcolor="#2d4a6b", bold=True)
_PLAIN = Style()


def _row_strip(item: QueueItem, width: int, base: Style, show_catalogue: bool = False) -> Strip:
    """One list row: b2n mark, score, title, labels, venue and year (and the catalogue, in a
    view of every catalogue), fitted to `width` cells by `_row_columns`.

    Measured in terminal cells, not characters: a CJK character or an emoji takes two, and
    counted as one it pushed the labels and venue out of the row.
    """
    mark = "◆" if item.base_to_novel_flag else " "
    status = _status_prefix(item)
    labels, venue = _row_columns(item, width, show_catalogue)
    beside = (cell_len(labels) + 1 if labels else 0) + (cell_len(venue) + 2 if venue else 0)
    title = _fit(status + item.title, max(0, width - 7 - beside))
    score_style = Style(color="green") if item.relevance >= 0.7 else Style(color="yellow")
    if item.relevance < 0.3:
        score_style = Style(color="red")
    segments = [
        Segment(f"{mark} ", base + Style(color="magenta")),
        Segment(f"{item.relevance:4.2f} ", base + score_style),
        Segment(title + " " if labels else title, base),
    ]
    if labels:
        segments.append(Segment(labels, base + Style(color="cyan")))
    if venue:
        segments.append(Segment(f"  {venue}", base + Style(dim=True)))
    return Strip(segments).adjust_cell_length(width, base)


# --------------------------------------------------------------------------- detail pane
class DetailView(ScrollView, can_focus=False):
    """The highlighted candidate, pre-rendered into lines.

    Showing another candidate only swaps lines and the virtual size: unlike a Static in a
    scrolling container, it never asks the screen for a new layout, which keeps a key press cheap.
    """

    DEFAULT_CSS = "DetailView { width: 2fr; height: 1fr; border: round $primary-darken-2; padding: 0 1; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = Text()
        self._lines: list[Strip] = []

    def show(self, text: Text) -> None:
        self.text = text
        self._render_lines()
        self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()

    def _render_lines(self) -> None:
        """Wrap the text at the width it will have: without a scrollbar if it fits the pane's
        height, else beside the scrollbar its length brings.

        `scrollable_content_region` only knows the scrollbar once a layout has shown it, so
        wrapping at its width lost the last two characters of every line of a long abstract
        under the scrollbar ("Visua", ".../abs/2310" then "8381").
        """
        region = self.content_region
        width = region.width
        if width <= 0:
            self._lines = []
            return
        lines = self._wrap(width)
        scrollbar = self.styles.scrollbar_size_vertical
        if len(lines) > region.height and self.styles.overflow_y in ("auto", "scroll") and width > scrollbar:
            width -= scrollbar
            lines = self._wrap(width)
        self._lines = lines
        self.virtual_size = Size(width, len(lines))

    def _wrap(self, width: int) -> list[Strip]:
        console = self.app.console
        options = console.options.update_width(width)
        return [
            Strip(line).adjust_cell_length(width)
            for line in Segment.split_lines(console.render(self.text, options))
        ]

    def page(self, direction: int) -> None:
        """Scroll a page down (1) or up (-1), keeping one line of the previous page in view."""
        step = max(1, self.scrollable_content_region.height - 1)
        self.scroll_to(y=self.scroll_offset.y + direction * step, animate=False, immediate=True)

    def on_resize(self, _event: events.Resize) -> None:
        self._render_lines()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        index = round(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width
        return self._lines[index] if 0 <= index < len(self._lines) else Strip.blank(width)


def explanation_terms(explanation: Any) -> tuple[list[str], list[str]]:
    """The terms that raised and lowered the score, from `enqueue.explain`'s result."""

    def terms(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, Mapping):
            return [str(k) for k in value]
        found = []
        for entry in value:
            if isinstance(entry, str):
                found.append(entry)
            elif isinstance(entry, tuple | list) and entry:
                found.append(str(entry[0]))
            elif hasattr(entry, "term"):
                found.append(str(entry.term))
        return found

    def pick(*names: str) -> Any:
        for name in names:
            if isinstance(explanation, Mapping) and name in explanation:
                return explanation[name]
            if hasattr(explanation, name):
                return getattr(explanation, name)
        return None

    return terms(pick("up", "terms_up", "positive")), terms(pick("down", "terms_down", "negative"))


def highlight(abstract: str, up: Iterable[str], down: Iterable[str] = ()) -> Text:
    """The abstract with the terms that raised the score in bold green, those that lowered it red.

    A term is marked where the model counted it: as whole tokens of its word analyzer
    (`WORD_TOKEN_PATTERN`), a two-word term on two consecutive tokens. Marked wherever its
    letters occurred, "or" (which lowered a score) was underlined inside "for" and "prior",
    and "prompt" inside "prompts", which the model counts as another word.
    """
    text = Text(abstract)
    tokens = [(m.start(), m.end(), m.group().lower()) for m in _TOKEN.finditer(abstract)]
    starts: dict[str, list[int]] = {}
    for position, (_start, _end, word) in enumerate(tokens):
        starts.setdefault(word, []).append(position)
    for terms, style in ((down, "red underline"), (up, "bold green reverse")):
        for term in {t.lower() for t in terms if t.strip()}:
            words = term.split()
            for first in starts.get(words[0], []):
                following = [word for _start, _end, word in tokens[first : first + len(words)]]
                if following == words:
                    text.stylize(style, tokens[first][0], tokens[first + len(words) - 1][1])
    return text


def render_detail(
    item: QueueItem, explanation: tuple[list[str], list[str]] | str | None, *, show_catalogue: bool = False
) -> Text:
    """The detail pane's text; `show_catalogue` names the list it is a candidate for (in a
    view of every catalogue, where a paper queued for two lists shows twice)."""
    out = Text()
    out.append(item.title + "\n", style="bold")
    if item.authors:
        shown = ", ".join(item.authors[:12]) + (" et al." if len(item.authors) > 12 else "")
        out.append(shown + "\n", style="italic")
    out.append(f"{item.venue_year or 'venue unknown'}", style="dim")
    out.append(f"   relevance {item.relevance:.2f}")
    if item.base_to_novel is not None:
        flag = " (flagged)" if item.base_to_novel_flag else ""
        out.append(f"   base-to-novel {item.base_to_novel:.2f}{flag}", style="magenta")
    out.append(f"   #{item.candidate_id} v{item.version} {item.status}")
    out.append(f" for {item.catalogue}\n" if show_catalogue else "\n")
    if item.proposed_labels:
        out.append("proposed: " + ", ".join(item.proposed_with_scores()) + "\n", style="cyan")
    if item.final_labels is not None:
        out.append("final: " + ", ".join(item.final_labels) + "\n", style="cyan")
    if item.rule:
        out.append(f"rule: {item.rule}\n", style="yellow")
    if item.reason:
        out.append(f"reason: {item.reason}\n")
    for name, url in item.links:
        out.append(f"{name}: ", style="bold")
        out.append(url + "\n", style=Style(link=url, color="blue"))
    if item.comment:
        out.append(f"comment: {item.comment}\n", style="dim")
    out.append("\n")
    if isinstance(explanation, tuple):
        out.append_text(highlight(item.abstract or "(no abstract)", *explanation))
    else:
        out.append(item.abstract or "(no abstract)")
        if isinstance(explanation, str):
            out.append(f"\n\n({explanation})", style="dim")
    return out
