"""The review terminal app: a thin Textual layer over `ReviewQueue`.

The list pane is a virtual list: it holds the ordered candidate ids (cheap even for 100k
pending candidates) and fetches the rows it draws a page at a time, so no widget is built
per candidate and a key press redraws only the visible lines. All rules (labels, locking,
undo) stay in the queue; this module only shows state and turns keys into queue calls.

Key bindings live on the main screen, not the app, so a modal with a text input (labels,
reject reason, filter) never sees them: typing `a` or `x` into an input stays text.
"""

from __future__ import annotations

import webbrowser
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from sqlalchemy import Engine
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.keys import format_key
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from vpt_tracker.config import Settings
from vpt_tracker.errors import UserError
from vpt_tracker.review.queue import Conflict, Filter, QueueItem, ReviewQueue
from vpt_tracker.store.tables import utcnow

#: action -> (default keys, footer description). Config `review.keys` maps an action to other keys.
DEFAULT_KEYS: dict[str, tuple[str, str]] = {
    "down": ("j,down", "Down"),
    "up": ("k,up", "Up"),
    "accept": ("a", "Accept"),
    "reject": ("x", "Reject"),
    "defer": ("d", "Defer"),
    "undo": ("u", "Undo"),
    "open": ("o", "Open"),
    "filter": ("slash", "Filter"),
    "help": ("question_mark", "Help"),
    "quit": ("q", "Quit"),
    "page_down": ("pagedown", "Page down"),
    "page_up": ("pageup", "Page up"),
}
_SHOWN_IN_FOOTER = {"down", "up", "accept", "reject", "defer", "undo", "open", "filter", "help", "quit"}

Opener = Callable[[str], object]
Explainer = Callable[[str, int], Any]


def check_keys(keys: Mapping[str, str]) -> dict[str, str]:
    """The remapped keys, or a UserError naming the actions that exist."""
    unknown = sorted(set(keys) - set(DEFAULT_KEYS))
    if unknown:
        raise UserError(
            f"review.keys: unknown action {', '.join(map(repr, unknown))}; actions: {', '.join(DEFAULT_KEYS)}"
        )
    return dict(keys)


@dataclass
class SessionSummary:
    """What a reviewer did in one sitting, printed on quit."""

    reviewer: str
    started: datetime
    accepted: int = 0
    rejected: int = 0
    deferred: int = 0
    undone: int = 0
    conflicts: int = 0
    remaining: int = 0
    finished: datetime | None = None

    def render(self) -> str:
        minutes = ((self.finished or utcnow()) - self.started).total_seconds() / 60
        return (
            f"review session of {self.reviewer}: {self.accepted} accepted, {self.rejected} rejected, "
            f"{self.deferred} deferred, {self.undone} undone, {self.conflicts} conflicts "
            f"in {minutes:.1f} min; {self.remaining} still pending"
        )


# --------------------------------------------------------------------------- list pane
class CandidateList(ScrollView, can_focus=True, inherit_bindings=False):
    """A virtual list of candidates: only the rows on screen are fetched and drawn.

    It holds the ordered ids and a bounded cache of rows keyed by candidate id, so removing
    a decided candidate (or putting an undone one back) shifts positions without refetching.
    """

    PAGE = 200
    CACHE_LIMIT = 5000

    DEFAULT_CSS = """
    CandidateList { width: 3fr; height: 1fr; border: round $primary-darken-2; }
    CandidateList:focus { border: round $accent; }
    """

    class Highlighted(Message):
        def __init__(self, item: QueueItem | None) -> None:
            super().__init__()
            self.item = item

    def __init__(self, fetch: Callable[[list[int]], list[QueueItem]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fetch = fetch
        self.ids: list[int] = []
        self.cursor = 0
        self._rows: dict[int, QueueItem | None] = {}
        self._strips: dict[tuple[int, int, bool, int], Strip] = {}
        self._removed: list[tuple[int, int]] = []  # (candidate id, position), for undo

    # data -------------------------------------------------------------
    def load(self, ids: list[int], cursor: int = 0) -> None:
        self.ids = ids
        self._rows.clear()
        self._strips.clear()
        self._removed.clear()
        self._moved_to(max(0, min(cursor, len(ids) - 1)))

    def item_at(self, index: int) -> QueueItem | None:
        if not 0 <= index < len(self.ids):
            return None
        candidate_id = self.ids[index]
        if candidate_id not in self._rows:
            if len(self._rows) > self.CACHE_LIMIT:
                self._rows.clear()
            start = index - index % self.PAGE
            wanted = [i for i in self.ids[start : start + self.PAGE] if i not in self._rows]
            fetched = {item.candidate_id: item for item in self._fetch(wanted)}
            for wanted_id in wanted:
                self._rows[wanted_id] = fetched.get(wanted_id)  # None: gone from the database
        return self._rows[candidate_id]

    @property
    def current(self) -> QueueItem | None:
        return self.item_at(self.cursor)

    def replace(self, item: QueueItem) -> None:
        """Show fresh state for one candidate (e.g. after a conflict)."""
        self._rows[item.candidate_id] = item
        self._strips.clear()
        self.refresh()

    def remove_current(self) -> None:
        """Drop the decided candidate from view and highlight the next one."""
        if not self.ids:
            return
        self._removed.append((self.ids.pop(self.cursor), self.cursor))
        self._moved_to(min(self.cursor, len(self.ids) - 1) if self.ids else 0)

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
        self.post_message(self.Highlighted(self.current))

    def _moved_to(self, cursor: int) -> None:
        self.cursor = cursor
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.ids))
        self._follow_cursor()
        self.refresh()
        self.post_message(self.Highlighted(self.current))

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
        if item is None:
            return Strip.blank(width)
        selected = index == self.cursor
        key = (item.candidate_id, item.version, selected, width)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > self.CACHE_LIMIT:
                self._strips.clear()
            strip = self._strips[key] = _row_strip(item, width, _SELECTED if selected else _PLAIN)
        return strip


_SELECTED = Style(bgcolor="#2d4a6b", bold=True)
_PLAIN = Style()


def _row_strip(item: QueueItem, width: int, base: Style) -> Strip:
    """One list row: b2n mark, score, title, labels, venue and year, fitted to `width`."""
    mark = "◆" if (item.base_to_novel or 0) >= 0.5 else " "
    labels = ",".join(item.final_labels if item.final_labels is not None else item.proposed_labels)
    venue = item.venue_year
    status = "" if item.status == "pending" else f"[{item.status}] "
    fixed = 2 + 5 + len(venue) + 2
    label_width = min(len(labels), max(0, (width - fixed) // 3))
    title_width = max(0, width - fixed - label_width - 1 - len(status))
    title = status + item.title
    title = title[: title_width - 1] + "…" if len(title) > title_width else title.ljust(title_width)
    label_text = labels[:label_width].ljust(label_width)
    score_style = Style(color="green") if item.relevance >= 0.7 else Style(color="yellow")
    if item.relevance < 0.3:
        score_style = Style(color="red")
    segments = [
        Segment(f"{mark} ", base + Style(color="magenta")),
        Segment(f"{item.relevance:4.2f} ", base + score_style),
        Segment(title + " ", base),
        Segment(label_text, base + Style(color="cyan")),
        Segment(f"  {venue}", base + Style(dim=True)),
    ]
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
        width = self.scrollable_content_region.width
        if width <= 0:
            self._lines = []
            return
        console = self.app.console
        options = console.options.update_width(width)
        self._lines = [
            Strip(line).adjust_cell_length(width)
            for line in Segment.split_lines(console.render(self.text, options))
        ]
        self.virtual_size = Size(width, len(self._lines))

    def on_resize(self, _event: events.Resize) -> None:
        self._render_lines()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        index = round(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width
        return self._lines[index] if 0 <= index < len(self._lines) else Strip.blank(width)


def _explanation_terms(explanation: Any) -> tuple[list[str], list[str]]:
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
    """The abstract with the terms that raised the score in bold green, those that lowered it red."""
    text = Text(abstract)
    for terms, style in ((down, "red underline"), (up, "bold green reverse")):
        for term in sorted({t for t in terms if t.strip()}, key=len, reverse=True):
            text.highlight_words([term], style=style, case_sensitive=False)
    return text


def render_detail(item: QueueItem, explanation: tuple[list[str], list[str]] | str | None) -> Text:
    out = Text()
    out.append(item.title + "\n", style="bold")
    if item.authors:
        shown = ", ".join(item.authors[:12]) + (" et al." if len(item.authors) > 12 else "")
        out.append(shown + "\n", style="italic")
    out.append(f"{item.venue_year or 'venue unknown'}", style="dim")
    out.append(f"   relevance {item.relevance:.2f}")
    if item.base_to_novel is not None:
        out.append(f"   base-to-novel {item.base_to_novel:.2f}", style="magenta")
    out.append(f"   #{item.candidate_id} v{item.version} {item.status}\n")
    if item.proposed_labels:
        parts = [
            f"{label} {item.label_scores[label]:.2f}" if label in item.label_scores else label
            for label in item.proposed_labels
        ]
        out.append("proposed: " + ", ".join(parts) + "\n", style="cyan")
    if item.final_labels is not None:
        out.append("final: " + ", ".join(item.final_labels) + "\n", style="cyan")
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


# --------------------------------------------------------------------------- modals
class AcceptScreen(ModalScreen[list[str] | None]):
    """The label editor: pre-filled with the proposals, checked against the taxonomy."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, item: QueueItem, valid: list[str]) -> None:
        super().__init__()
        self.item = item
        self.valid = valid

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Accept #{self.item.candidate_id}: {self.item.title}", id="dialog-title")
            yield Label("Labels, comma-separated (Enter accepts, Esc cancels):")
            yield Input(value=", ".join(self.item.proposed_labels), id="labels")
            if self.valid:
                yield Label("Valid: " + ", ".join(self.valid), classes="hint")
            yield Label("", id="error", classes="error")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        labels = [part.strip() for part in event.value.split(",") if part.strip()]
        unknown = [label for label in labels if self.valid and label not in self.valid]
        if unknown:
            self.query_one("#error", Label).update(f"unknown: {', '.join(unknown)}")
            return
        self.dismiss(labels)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RejectScreen(ModalScreen[str | None]):
    """The reason prompt: a short list from `review.reject_reasons`, or free text."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, item: QueueItem, reasons: list[str]) -> None:
        super().__init__()
        self.item = item
        self.reasons = reasons

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Reject #{self.item.candidate_id}: {self.item.title}", id="dialog-title")
            yield OptionList(*[Option(f"{n}. {r}", id=str(n)) for n, r in enumerate(self.reasons, 1)])
            yield Label("…or type a reason (Enter rejects, Tab switches, Esc cancels):")
            yield Input(placeholder="free text", id="reason")

    def on_key(self, event: events.Key) -> None:
        # Number keys pick a listed reason, but only while the list (not the input) has focus.
        if isinstance(self.focused, OptionList) and event.character and event.character.isdigit():
            index = int(event.character) - 1
            if 0 <= index < len(self.reasons):
                event.stop()
                self.dismiss(self.reasons[index])

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.reasons[event.option_index])

    @on(Input.Submitted)
    def typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class FilterScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Filter: words, label:KEY, score>=X, score<=X (empty clears; Esc cancels)")
            yield Input(value=self.current, id="filter")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        lines = "\n".join(f"  {keys:<18} {description}" for keys, description in self.keys)
        with Vertical(id="dialog"):
            yield Label("Keys", id="dialog-title")
            yield Static(lines)
            yield Label("Filter syntax: words, label:KEY, score>=0.5, score<=0.2", classes="hint")
            yield Label("Esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)


# --------------------------------------------------------------------------- main screen
class ReviewScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(keys, f"review('{action}')", description, id=action, show=action in _SHOWN_IN_FOOTER)
        for action, (keys, description) in DEFAULT_KEYS.items()
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal(id="panes"):
            yield CandidateList(self.app_.queue.items, id="list")
            yield DetailView(id="detail")
        yield Static(id="empty")
        yield Footer()

    @property
    def app_(self) -> ReviewApp:
        app = self.app
        assert isinstance(app, ReviewApp)
        return app

    def on_mount(self) -> None:
        self.app_.reload()

    def on_candidate_list_highlighted(self, event: CandidateList.Highlighted) -> None:
        # Handled here, not on the app: a message the screen itself caused stops bubbling at the screen.
        self.app_.show_detail(event.item)

    def action_review(self, action: str) -> None:
        getattr(self.app_, f"do_{action}")()


class ReviewApp(App[SessionSummary]):
    """`vpt-tracker review`: triage a catalogue's pending candidates by keyboard."""

    TITLE = "vpt-tracker review"
    RECOUNT_SECONDS = 15.0
    CSS = """
    #status { height: 1; background: $primary-darken-2; color: $text; padding: 0 1; }
    #panes { height: 1fr; }
    #empty { display: none; height: 1fr; content-align: center middle; text-align: center; }
    ReviewScreen.empty #panes { display: none; }
    ReviewScreen.empty #empty { display: block; }
    #dialog { width: 80%; height: auto; max-height: 90%; border: thick $accent; background: $surface;
              padding: 1 2; }
    #dialog-title { text-style: bold; margin-bottom: 1; }
    ModalScreen { align: center middle; }
    .hint { color: $text-muted; }
    .error { color: $error; }
    OptionList { height: auto; max-height: 12; }
    """

    def __init__(
        self,
        queue: ReviewQueue,
        *,
        keys: Mapping[str, str] | None = None,
        reject_reasons: list[str] | None = None,
        opener: Opener = webbrowser.open,
        explainer: Explainer | Literal["store"] | None = "store",
        clock: Callable[[], datetime] = utcnow,
        status: str = "pending",
        explain_delay: float = 0.15,
    ) -> None:
        super().__init__()
        self.queue = queue
        self.keys = check_keys(keys or {})
        self.reject_reasons = list(reject_reasons or [])
        self.opener = opener
        # "store": the classifier's explanations from this database; None: no highlighting.
        self.explainer = store_explainer(queue.engine) if explainer == "store" else explainer
        self.clock = clock
        if status not in ("pending", "deferred"):
            raise UserError(f"the review app shows pending or deferred candidates, not {status!r}")
        self.status = status
        self.filter = Filter()
        self.filter_text = ""
        self.summary = SessionSummary(queue.reviewer, clock())
        self._valid: dict[str, list[str]] = {}
        self._explained: dict[tuple[str, int], tuple[list[str], list[str]] | str] = {}
        self._unexplainable: dict[str, str] = {}  # catalogue -> why it cannot be explained
        self._explain_timer: Timer | None = None
        self.explain_delay = explain_delay  # seconds the highlight must rest before the classifier is asked
        self.remaining = 0
        self.main = ReviewScreen()

    # lifecycle ----------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def on_mount(self) -> None:
        self.set_keymap(self.keys)
        # Own actions update the counter at once; a periodic recount shows other reviewers' work.
        self.set_interval(self.RECOUNT_SECONDS, self.recount)

    @property
    def candidates(self) -> CandidateList:
        return self.main.query_one(CandidateList)

    def reload(self, focus_id: int | None = None) -> None:
        """Read the ordered ids again (start, filter, undo) and keep or move the highlight."""
        ids = self.queue.ids(status=self.status, filter=self.filter)
        cursor = ids.index(focus_id) if focus_id in ids else self.candidates.cursor
        self.candidates.load(ids, cursor)
        self.candidates.focus()
        self.update_status()

    def recount(self) -> None:
        """The periodic refresh: new counts, and new candidates if the list had run empty."""
        self.remaining = self.queue.count(status=self.status)
        if not self.candidates.ids and self.remaining and not self.filter:
            self.reload()
        else:
            self.update_status(recount=False)

    def update_status(self, recount: bool = True) -> None:
        """The counter line; `recount` asks the database (other reviewers' work shows up too)."""
        screen = self.main
        if recount:
            self.remaining = self.queue.count(status=self.status)
        shown = len(self.candidates.ids)
        scope = self.queue.catalogue or "all catalogues"
        text = f"{self.queue.reviewer} · {scope} · {self.remaining} {self.status} remaining"
        if self.filter:
            text += f" · filter: {self.filter.describe()} ({shown} match)"
        s = self.summary
        text += f" · this session: {s.accepted} accepted, {s.rejected} rejected, {s.deferred} deferred"
        screen.query_one("#status", Static).update(text, layout=False)
        empty = not self.candidates.ids
        screen.set_class(empty, "empty")
        if empty:
            message = (
                f"No candidate matches the filter “{self.filter.describe()}”. Press / to change it."
                if self.filter
                else f"Nothing to review in {scope}: the queue is empty. 🎉\n\n"
                "New candidates arrive with the next `vpt-tracker run nightly`. Press q to quit."
            )
            screen.query_one("#empty", Static).update(message)

    # detail -------------------------------------------------------------
    def show_detail(self, item: QueueItem | None) -> None:
        if item is None:
            return
        key = (item.catalogue, item.paper_id)
        known = self._explained.get(key, self._unexplainable.get(item.catalogue))
        self.main.query_one(DetailView).show(render_detail(item, known))
        if known is None and self.explainer is not None:
            # Explain only where the reviewer pauses: skimming past rows starts no work that
            # would compete with drawing the next key press.
            if self._explain_timer is not None:
                self._explain_timer.stop()
                self._explain_timer = None
            if self.explain_delay > 0:
                self._explain_timer = self.set_timer(self.explain_delay, lambda: self.explain(item))
            else:
                self.explain(item)

    @work(thread=True, exclusive=True, group="explain")
    def explain(self, item: QueueItem) -> None:
        assert self.explainer is not None
        result: tuple[list[str], list[str]] | str
        catalogue_wide = False
        try:
            result = _explanation_terms(self.explainer(item.catalogue, item.paper_id))
        except UserError as exc:
            # For a stored candidate this means the catalogue has no usable model: it holds
            # for every paper of the catalogue, so it is not asked again in this session.
            result, catalogue_wide = f"no highlighting: {exc}", True
        except Exception as exc:  # shown, not hidden: the reviewer should know highlighting failed
            result = f"no highlighting, explain failed: {exc}"
        self.call_from_thread(self._explained_now, item, result, catalogue_wide)

    def _explained_now(
        self, item: QueueItem, result: tuple[list[str], list[str]] | str, catalogue_wide: bool
    ) -> None:
        if catalogue_wide and isinstance(result, str):
            self._unexplainable[item.catalogue] = result
        else:
            self._explained[(item.catalogue, item.paper_id)] = result
        current = self.candidates.current
        if current is not None and (current.catalogue, current.paper_id) == (item.catalogue, item.paper_id):
            self.main.query_one(DetailView).show(render_detail(current, result))

    # actions ------------------------------------------------------------
    def do_down(self) -> None:
        self.candidates.move(1)

    def do_up(self) -> None:
        self.candidates.move(-1)

    def do_page_down(self) -> None:
        self.candidates.move(max(1, self.candidates.scrollable_content_region.height - 1))

    def do_page_up(self) -> None:
        self.candidates.move(-max(1, self.candidates.scrollable_content_region.height - 1))

    def do_accept(self) -> None:
        item = self.candidates.current
        if item is None:
            return
        try:
            valid = self._valid_labels(item.catalogue)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return

        def done(labels: list[str] | None) -> None:
            if labels is not None:
                self._apply(
                    item, "accepted", lambda: self.queue.accept(item.candidate_id, labels, item.version)
                )

        self.push_screen(AcceptScreen(item, valid), done)

    def do_reject(self) -> None:
        item = self.candidates.current
        if item is None:
            return

        def done(reason: str | None) -> None:
            if reason:
                self._apply(
                    item, "rejected", lambda: self.queue.reject(item.candidate_id, reason, item.version)
                )

        self.push_screen(RejectScreen(item, self.reject_reasons), done)

    def do_defer(self) -> None:
        item = self.candidates.current
        if item is not None:
            self._apply(item, "deferred", lambda: self.queue.defer(item.candidate_id, None, item.version))

    def do_undo(self) -> None:
        try:
            items = self.queue.undo()
        except UserError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.summary.undone += len(items)
        self.notify(f"undone: {', '.join(f'#{i.candidate_id}' for i in items)} {items[0].status} again")
        if len(items) == 1 and self.candidates.restore(items[0].candidate_id, items[0]):
            self.remaining += 1 if items[0].status == self.status else 0
            self.update_status(recount=False)
        else:  # a bulk undo, or a decision made elsewhere: read the queue again
            self.reload(focus_id=items[0].candidate_id)

    def do_open(self) -> None:
        item = self.candidates.current
        if item is None:
            return
        if not item.links:
            self.notify("this paper has no link", severity="warning")
            return
        self.opener(item.links[0][1])

    def do_filter(self) -> None:
        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                self.filter = Filter.parse(text)
            except UserError as exc:
                self.notify(str(exc), severity="error")
                return
            self.filter_text = text
            self.reload()

        self.push_screen(FilterScreen(self.filter_text), done)

    def do_help(self) -> None:
        keymap = {**{a: k for a, (k, _) in DEFAULT_KEYS.items()}, **self.keys}
        rows = [
            (" ".join(format_key(key) for key in keymap[action].split(",")), description)
            for action, (_keys, description) in DEFAULT_KEYS.items()
        ]
        self.push_screen(HelpScreen(rows))

    async def action_quit(self) -> None:
        """Ctrl+Q (Textual's own quit) also ends with the session summary."""
        self.do_quit()

    def do_quit(self) -> None:
        self.summary.remaining = self.queue.count()
        self.summary.finished = self.clock()
        self.exit(self.summary)

    # helpers ------------------------------------------------------------
    def _apply(self, item: QueueItem, outcome: str, action: Callable[[], QueueItem]) -> None:
        try:
            action()
        except UserError as exc:
            if isinstance(exc, Conflict):
                self.summary.conflicts += 1
                current = exc.current
                if current is not None:
                    self.candidates.replace(current)
                    self.candidates.post_message(CandidateList.Highlighted(current))
            self.notify(str(exc), severity="error", timeout=8)
            return
        setattr(self.summary, outcome, getattr(self.summary, outcome) + 1)
        if self.candidates.current is not None and self.candidates.current.candidate_id == item.candidate_id:
            self.candidates.remove_current()
        if item.status == self.status:
            self.remaining -= 1
        self.update_status(recount=False)

    def _valid_labels(self, catalogue: str) -> list[str]:
        if catalogue not in self._valid:
            self._valid[catalogue] = self.queue.valid_labels(catalogue)
        return self._valid[catalogue]


def store_explainer(engine: Engine, settings: Settings | None = None) -> Explainer:
    """`enqueue.explain` on this database and config.

    Imported on first use, in the worker thread: it loads scikit-learn, which would otherwise
    slow down opening the app.
    """

    def run(catalogue: str, paper_id: int) -> Any:
        from vpt_tracker.enqueue import explain

        return explain(engine, catalogue, paper_id, settings=settings)

    return run
