"""The review terminal app: a thin Textual layer over `ReviewQueue`.

The list pane is a virtual list: it holds the ordered candidate ids (cheap even for 100k
pending candidates) and fetches the rows it draws a page at a time, so no widget is built
per candidate and a key press redraws only the visible lines. All rules (labels, locking,
undo) stay in the queue; this module only shows state and turns keys into queue calls.

Key bindings live on the main screen, not the app, so a modal with a text input (labels,
reject reason, filter) never sees them: typing `a` or `x` into an input stays text.

Past the first read of the queue when it opens, the app's own thread never waits for the
database: decisions (`Decision`) and reads (`Read`) run in threads of their own, each call in
a session of its own, and their results are taken on the app's thread. So the screen moves,
scrolls and quits while SQLite is held by another writer or PostgreSQL does not answer, and no
key has to be dropped for having been typed while the screen stood still.
"""

from __future__ import annotations

import asyncio
import webbrowser
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from threading import Thread
from time import monotonic
from typing import Any, Literal

from rich.cells import cell_len
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.keys import format_key
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from vpt_tracker.config import REVIEW_ACTIONS, Settings, unknown_review_actions
from vpt_tracker.errors import UserError
from vpt_tracker.review.dialogs import AcceptScreen, FilterScreen, HelpScreen, RejectScreen
from vpt_tracker.review.panes import CandidateList, DetailView, explanation_terms, render_detail
from vpt_tracker.review.queue import Conflict, Filter, QueueItem, ReviewQueue
from vpt_tracker.store.tables import utcnow
from vpt_tracker.wording import plural

# The arrows need no footer (`?` lists every key); with them the compact footer still lost
# `? Help` and `q Quit` off its end at 80 columns.
_SHOWN_IN_FOOTER = {"accept", "reject", "defer", "undo", "open", "filter", "help", "quit"}
#: Actions on the highlighted candidate: an empty list has none, and hides their keys.
_ON_A_CANDIDATE = {
    "down", "up", "page_down", "page_up", "detail_down", "detail_up",
    "accept", "relabel", "reject", "defer", "open",
}  # fmt: skip

Opener = Callable[[str], object]
Explainer = Callable[[str, int], Any]


def check_keys(keys: Mapping[str, str]) -> dict[str, str]:
    """The remapped keys, or a UserError naming the actions that exist (as the config does,
    for an app built without one), or the action remapped to no key."""
    if problem := unknown_review_actions(keys):
        raise UserError(f"review.keys: {problem}")
    for action, value in keys.items():
        if not all(key.strip() for key in value.split(",")):
            raise UserError(f'review.keys: {action} = {value!r} names no key; write e.g. {action} = "y"')
    return dict(keys)


def review_bindings(keys: Mapping[str, str]) -> list[Binding]:
    """The main screen's bindings: `REVIEW_ACTIONS` with `keys` (action -> keys) remapped, in
    its order, which is the footer's. A key that a remapped action takes is no longer the
    default of another (`reject = "a"` leaves accept only its remapped key, if any).

    Built here, not by Textual's keymap (`App.set_keymap`): that moved each remapped action
    to the end of the footer ("x Reject … q Quit y Accept").
    """
    by_action = {
        action: list(
            Binding.make_bindings(
                [
                    Binding(
                        keys.get(action, default),
                        f"review('{action}')",
                        description,
                        id=action,
                        show=action in _SHOWN_IN_FOOTER,
                    )
                ]
            )
        )
        for action, (default, description) in REVIEW_ACTIONS.items()
    }
    taken = {binding.key for action in keys for binding in by_action[action]}
    return [
        binding
        for action, bindings in by_action.items()
        for binding in bindings
        if action in keys or binding.key not in taken
    ]


@dataclass
class SessionSummary:
    """What a reviewer did in one sitting, printed on quit."""

    reviewer: str
    started: datetime
    accepted: int = 0
    rejected: int = 0
    deferred: int = 0
    undone: int = 0  # decisions undone: one `u` each, a bulk reject as one
    undone_candidates: int = 0  # the candidates those undos put back
    conflicts: int = 0
    remaining: int | None = 0  # None: the database did not answer when the reviewer quit
    finished: datetime | None = None

    def undone_text(self) -> str:
        """`2 undone`, or where an undo put back a whole bulk reject `1 undone (199 candidates)`,
        as the status line and the summary on quit both say it: one `u` undoes one decision,
        and counting its candidates said "199 undone" beside "0 rejected"."""
        text = f"{self.undone} undone"
        if self.undone_candidates != self.undone:
            text += f" ({plural(self.undone_candidates, 'candidate')})"
        return text

    def render(self) -> str:
        minutes = ((self.finished or utcnow()) - self.started).total_seconds() / 60
        return (
            f"review session of {self.reviewer}: {self.accepted} accepted, {self.rejected} rejected, "
            f"{self.deferred} deferred, {self.undone_text()}, {plural(self.conflicts, 'conflict')} "
            f"in {minutes:.1f} min; "
            + (
                f"{self.remaining} still pending"
                if self.remaining is not None
                else "still pending: unknown (the database did not answer)"
            )
        )


@dataclass
class Decision:
    """A decision queued for the database: `call` runs in a worker thread, `done` on the app's
    thread with its result. `verb` marks its row while it waits ("deferring"), and `doing`
    says it in the status line ("deferring #12")."""

    verb: str
    call: Callable[[], Any]
    done: Callable[[Any], None]
    candidate_id: int | None = None  # the row it marks while it waits (None: an undo)

    @property
    def doing(self) -> str:
        return self.verb if self.candidate_id is None else f"{self.verb} #{self.candidate_id}"


@dataclass(eq=False)
class Read:
    """A read of the database off the app's thread (`ReviewApp._read`): `call` runs in a thread
    of its own, `done` on the app's thread with its result, `failed` with the error of a database that did not
    answer (or a UserError the read raised); without `failed`, the error is a notice.

    `key` names what it reads: a newer read of the same key supersedes an older one still
    waiting, whose answer is then dropped. `after_decisions`: it reads what decisions write
    (the list, the counts), so it starts only once the decisions queued before it are written,
    and reads again if one is written before its answer is taken, which would otherwise be
    stale. `doing` says it in the status line while it waits ("filter: clip")."""

    key: str
    doing: str
    call: Callable[[], Any]
    done: Callable[[Any], None]
    failed: Callable[[OperationalError | UserError], None] | None = None
    after_decisions: bool = True
    group: str = ""  # its worker group (default: `key`); exclusive unless it is "rows"
    since: float | None = field(default=None, init=False)  # started at (monotonic); None: not yet
    written: int = field(default=0, init=False)  # decisions written when it started


@dataclass(frozen=True)
class ListRead:
    """What a read of the list brings (`ReviewApp.reload`): the ordered ids, the counts of the
    view's status and of the other one (said by an empty list), and the rows of the page the
    highlight will be on, so the list is drawn whole at once."""

    ids: list[int]
    remaining: int
    other: int
    rows: list[QueueItem]


# --------------------------------------------------------------------------- main screen
class ReviewScreen(Screen[None]):
    @classmethod
    def with_bindings(cls, bindings: list[Binding]) -> ReviewScreen:
        """A screen whose keys are `bindings` (from `review_bindings`, so from the config).

        Textual reads a screen's bindings from its class's BINDINGS (a key of a subclass
        replaces the Screen's own) and has no public way to give one instance its own; so
        the config's keys make a subclass of their own, not a write to Textual's private
        `_bindings`."""
        configured = type(cls.__name__, (cls,), {"BINDINGS": bindings})
        return configured()

    def compose(self) -> ComposeResult:
        yield Static(id="status", markup=False)
        with Horizontal(id="panes"):
            yield CandidateList(
                self.app_.read_rows,
                self.app_.show_detail,
                show_catalogue=self.app_.every_catalogue,
                id="list",
            )
            yield DetailView(id="detail")
        yield Static(id="empty", markup=False)
        yield Footer(compact=True)  # see _SHOWN_IN_FOOTER

    @property
    def app_(self) -> ReviewApp:
        app = self.app
        assert isinstance(app, ReviewApp)
        return app

    def on_mount(self) -> None:
        self.app_.open_list()

    def action_review(self, action: str) -> None:
        getattr(self.app_, f"do_{action}")()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide (and disable) the keys that cannot act in this view: the footer of the
        deferred view offered `d Defer`, which every candidate there refused ("it is
        deferred"), and an empty list offered accept, reject and defer with nothing to act on.
        `update_status` asks again when the list empties or fills."""
        if action != "review" or not parameters:
            return True
        name = parameters[0]
        if name == "defer" and self.app_.status != "pending":
            return False  # only a pending candidate can be deferred
        return not (name in _ON_A_CANDIDATE and self.has_class("empty"))


class ReviewApp(App[SessionSummary]):
    """`vpt-tracker review`: triage a catalogue's pending candidates by keyboard."""

    TITLE = "vpt-tracker review"
    RECOUNT_SECONDS = 15.0
    #: A decision or a read still waiting for the database after this long says so in the status line.
    WAIT_SHOWN_AFTER = 0.25
    CSS = """
    #status { height: auto; max-height: 4; background: $primary-darken-2; color: $text; padding: 0 1; }
    #panes { height: 1fr; }
    #empty { display: none; height: 1fr; content-align: center middle; text-align: center; }
    ReviewScreen.empty #panes { display: none; }
    ReviewScreen.empty #empty { display: block; }
    #dialog { width: 80%; height: auto; max-height: 90%; border: thick $accent; background: $surface;
              padding: 1 2; }
    #dialog Label { width: 100%; }
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
        self._other_remaining: int | None = None  # of the other status, for an empty list; None: unknown
        # Every catalogue in one view: a paper queued for two lists shows twice, so rows, the
        # detail pane and the dialogs say which list each one is for.
        self.every_catalogue = queue.catalogue is None
        self.key_bindings = review_bindings(self.keys)
        self.main = ReviewScreen.with_bindings(self.key_bindings)
        # Decisions run one at a time, in the order of their keys, in a worker thread: the
        # screen keeps drawing (and moving) while SQLite is held by another writer.
        self._decisions: deque[Decision] = deque()
        self._deciding: Decision | None = None
        self._wait_timer: Timer | None = None
        self._waiting_shown = False
        self._quit_when_decided = False
        # Reads in workers, by key (`Read`): the newest of each, waiting or parked behind decisions.
        self._reads: dict[str, Read] = {}
        self._written = 0  # decisions written so far: a read that saw fewer may be stale
        self._pending_filter: tuple[Filter, str] | None = None  # typed, its list not read yet

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Textual's notify, but plain text by default: messages quote titles, labels and
        reasons, and "[CLS] is Not Enough" is a real title, not a style."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # lifecycle ----------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def on_mount(self) -> None:
        # Own actions update the counter at once; a periodic recount shows other reviewers' work.
        self.set_interval(self.RECOUNT_SECONDS, self.recount)

    @property
    def candidates(self) -> CandidateList:
        return self.main.query_one(CandidateList)

    def open_list(self) -> None:
        """The first read of the queue, on the app's own thread: the app has nothing to show
        or act on before it (as `ReviewQueue` read its catalogue before the app started).
        Every later read is made in a worker (`_read`)."""
        self._took_list(self._list_call(self.filter, None)(), None, None, None)
        if self.queue.catalogue is not None:  # the label editor opens with them at once
            self._valid[self.queue.catalogue] = self.queue.valid_labels(self.queue.catalogue)

    def reload(
        self,
        focus_id: int | None = None,
        *,
        otherwise: int | None = None,
        filter: tuple[Filter, str] | None = None,
    ) -> None:
        """Read the ordered ids again (filter, undo, an emptied list) in a worker, and then
        highlight `focus_id`; if it is not in the list, the row `otherwise` (default: the
        same row as before). With `otherwise` and no `focus_id`, the paper highlighted when
        the answer comes stays highlighted if the new list has it.

        `filter` (parsed, and as typed) replaces the current one once its ids are read (its
        label checked first): a database that does not answer leaves the list and its filter
        as they were. A newer read of the list supersedes one still waiting; one without a
        filter reads with the filter typed last, even if its list is not read yet."""
        if filter is not None:
            self._pending_filter = filter
        wanted = self._pending_filter or (self.filter, self.filter_text)
        checked = self._pending_filter is not None
        doing = f"filter: {wanted[0].describe() or 'none'}" if checked else "reading the list"

        def failed(exc: OperationalError | UserError) -> None:
            self._pending_filter = None  # the list and its filter stay as they were
            self.update_status(empty=False)
            self._unread(exc)

        self._read(
            Read(
                "list",
                doing,
                self._list_call(wanted[0], focus_id, check=checked),
                lambda result: self._took_list(result, focus_id, otherwise, wanted if checked else None),
                failed,
            )
        )

    def _list_call(
        self, filter: Filter, focus_id: int | None, *, check: bool = False
    ) -> Callable[[], ListRead]:
        """The worker's side of a list read: everything the list and the status line show."""
        queue, status, page = self.queue, self.status, CandidateList.PAGE

        def call() -> ListRead:
            if check:
                queue.check_filter(filter)
            ids = queue.ids(status=status, filter=filter)
            at = ids.index(focus_id) if focus_id in ids else 0
            start = at - at % page
            return ListRead(
                ids,
                queue.count(status=status),
                queue.count(status=self.other_status),
                queue.items(ids[start : start + page]),
            )

        return call

    def _took_list(
        self, result: ListRead, focus_id: int | None, otherwise: int | None, filter: tuple[Filter, str] | None
    ) -> None:
        if filter is not None:
            self.filter, self.filter_text = filter
            self._pending_filter = None
        if focus_id is None and otherwise is not None:
            current = self.candidates.current  # the paper highlighted now, not when it was asked
            focus_id = current.candidate_id if current is not None else None
        if focus_id in result.ids:
            cursor = result.ids.index(focus_id)
        else:
            cursor = self.candidates.cursor if otherwise is None else otherwise
        self.remaining, self._other_remaining = result.remaining, result.other
        self.candidates.load(result.ids, cursor, result.rows)
        self.candidates.focus()
        self.update_status()

    def read_rows(self, ids: list[int], generation: int) -> None:
        """Read the rows the list asks for (`CandidateList.fetch`); they fill only its holes,
        so they need not wait for decisions."""
        self._read(
            Read(
                f"rows {generation} {ids[0] if ids else ''}",
                "reading rows",
                lambda: self.queue.items(ids),
                lambda rows: self.candidates.fill(generation, ids, rows),
                lambda exc: self._rows_unanswered(generation, ids, exc),
                after_decisions=False,
                group="rows",
            )
        )

    def _rows_unanswered(self, generation: int, ids: list[int], exc: OperationalError | UserError) -> None:
        said = self.candidates.unanswered  # one notice, not one per page
        self.candidates.unanswered_rows(generation, ids)
        if not said:
            self._unread(exc)

    @property
    def other_status(self) -> str:
        """The status of the other view (deferred beside pending): an empty list says its count."""
        return "deferred" if self.status == "pending" else "pending"

    def recount(self) -> None:
        """The periodic refresh, in a worker: new counts, and new candidates if the list had
        run empty. It waits for the decisions queued before it, so it counts them."""
        queue, status, other = self.queue, self.status, self.other_status
        self._read(
            Read(
                "recount",
                "recount",
                lambda: (queue.count(status=status), queue.count(status=other)),
                self._recounted,
            )
        )

    def _recounted(self, counts: tuple[int, int]) -> None:
        self.remaining, self._other_remaining = counts
        if self.candidates.unanswered:  # the database answers again: read what was not drawn
            self.candidates.retry()
        if not self.candidates.ids and self.remaining and "list" not in self._reads:
            # Read with the filter: a list a filter emptied shows new matches too (it was
            # left empty, whatever arrived).
            self.reload()
        else:
            self.update_status()

    # reads in workers -------------------------------------------------------
    def _read(self, read: Read) -> None:
        """Read in a worker thread, superseding a read of the same key still waiting. One that
        reads what decisions write starts once those queued before it are written."""
        read.since = None
        self._reads[read.key] = read
        if read.after_decisions and self.waiting_decisions:
            if self._waiting_shown:
                self.update_status(empty=False)
            return  # parked: `_decided` starts it once the last decision is written
        self._start_read(read)

    def _start_read(self, read: Read) -> None:
        read.since, read.written = monotonic(), self._written
        self.set_timer(self.WAIT_SHOWN_AFTER, lambda: self._show_read_wait(read))
        group = read.group or read.key
        exclusive = group != "rows"  # pages of rows are read side by side
        self.run_worker(self._run_read(read), group=group, exclusive=exclusive)

    async def _run_read(self, read: Read) -> None:
        """The worker: the call in a daemon thread of its own, its outcome taken here, on the
        app's thread. Not in a thread of Textual's (`thread=True`), as decisions are: the
        interpreter waits for those on exit, and `q` under a read that PostgreSQL kept waiting
        (a lock) closed the screen but printed the summary only once the read was answered.
        A read left behind changes nothing."""
        answer: Future[Any] = Future()

        def call() -> None:
            # A worker cancelled meanwhile (superseded, or the app quit) cancelled `answer`:
            # then nobody waits for the outcome.
            with suppress(InvalidStateError):
                try:
                    result = read.call()
                except BaseException as exc:  # to the worker, which raises what it does not take
                    answer.set_exception(exc)
                else:
                    answer.set_result(result)

        Thread(target=call, name=f"review read: {read.key}", daemon=True).start()
        try:
            result = await asyncio.wrap_future(answer)
        except (OperationalError, UserError) as exc:
            self._read_done(read, None, exc)
            return
        self._read_done(read, result, None)

    def _show_read_wait(self, read: Read) -> None:
        if self._reads.get(read.key) is read:
            self.update_status(empty=False)

    def _read_done(self, read: Read, result: Any, error: OperationalError | UserError | None) -> None:
        """Take a read's answer, unless a newer read of its key superseded it, or a decision
        was written (or began) since it started: then it may not show that decision, and it
        reads again once the decisions are written."""
        if self._reads.get(read.key) is not read:
            return
        if (
            error is None
            and read.after_decisions
            and (self._written != read.written or self.waiting_decisions)
        ):
            self._read(read)
            return
        del self._reads[read.key]
        shown = read.since is not None and monotonic() - read.since >= self.WAIT_SHOWN_AFTER
        if error is None:
            read.done(result)
        elif read.failed is not None:
            read.failed(error)
        else:
            self._unread(error)
        if shown:
            self.update_status(empty=False)  # the wait is over

    def _unread(self, exc: OperationalError | UserError) -> None:
        """Say why a read brought nothing: the database did not answer, or what it refused."""
        if isinstance(exc, OperationalError):
            self.notify(unanswered(exc), severity="error", timeout=8)
        else:
            self.notify(str(exc), severity="error")

    def _start_parked_reads(self) -> None:
        for read in list(self._reads.values()):
            if read.since is None:
                self._start_read(read)

    @property
    def waiting_reads(self) -> int:
        """The reads not answered yet (waiting for the database, or parked behind decisions)."""
        return len(self._reads)

    def update_status(self, *, empty: bool = True) -> None:
        """The counter line, from the counts in hand (reads and decisions update them).
        `empty=False` leaves the empty list's state as it is."""
        screen = self.main
        shown = len(self.candidates.ids)
        scope = self.queue.catalogue or "all catalogues"
        text = f"{self.queue.reviewer} · {scope} · {self.remaining} {self.status} remaining"
        waits = []
        if self._waiting_shown and self._deciding is not None:
            queued = f"; {plural(len(self._decisions), 'more decision')} queued" if self._decisions else ""
            waits.append(f"{self._deciding.doing}{queued}")
        now = monotonic()
        reads = dict.fromkeys(
            read.doing if read.since is not None else f"then {read.doing}"
            for read in self._reads.values()
            if (read.since is not None and now - read.since >= self.WAIT_SHOWN_AFTER)
            or (read.since is None and waits)
        )
        waits.extend(reads)
        if waits:
            text = f"⏳ waiting for the database… ({'; '.join(waits)}) · {text}"
        if self.filter:
            text += f" · filter: {self.filter.describe()} ({plural(shown, 'match', 'matches')})"
        s = self.summary
        text += f" · this session: {s.accepted} accepted, {s.rejected} rejected, {s.deferred} deferred"
        if s.undone:  # decisions undone are counted apart, as on quit: "1 accepted, 1 undone"
            text += f", {s.undone_text()}"
        # The line wraps rather than lose its end: on an 80-column terminal the session's
        # counts were cut after "0 deferred", and "1 undone" was never seen. Laying the screen
        # out again costs a frame, so only where the text may not fit on one line.
        status = screen.query_one("#status", Static)
        fits = cell_len(text) <= status.content_region.width and status.size.height <= 1
        status.update(text, layout=not fits)
        if not empty:
            return
        is_empty = not self.candidates.ids
        if is_empty != screen.has_class("empty"):
            screen.set_class(is_empty, "empty")
            screen.refresh_bindings()  # the keys that need a candidate come and go (`check_action`)
        if is_empty:
            screen.query_one("#empty", Static).update(self._empty_message(scope))

    def _empty_message(self, scope: str) -> str:
        """What an empty list says: why it is empty, and where work may still wait (the count
        of the other status, from the last read; left out while a decision made it unknown)."""
        if self.filter:
            return f"No candidate matches the filter “{self.filter.describe()}”. Press / to change it."
        other = self._other_remaining
        if self.status == "deferred":
            pending = f" ({other} remaining)" if other is not None else ""
            return (
                f"Nothing to review in {scope}: no candidate is deferred. 🎉\n\n"
                f"`vpt-tracker review` shows the pending ones{pending}. Press q to quit."
            )
        message = (
            f"Nothing to review in {scope}: the queue is empty. 🎉\n\n"
            "New candidates arrive with the next `vpt-tracker run nightly`. Press q to quit."
        )
        if other:
            # Not done yet: "the queue is empty" alone read as the end of the week's review.
            waits, them = ("candidate waits", "it") if other == 1 else ("candidates wait", "them")
            message += f"\n\n{other} deferred {waits}: `vpt-tracker review --deferred` shows {them}."
        return message

    # detail -------------------------------------------------------------
    def show_detail(self, item: QueueItem | None) -> None:
        if item is None:
            if self.candidates.reading(self.candidates.cursor):  # shown once read (`CandidateList.fill`)
                self.main.query_one(DetailView).show(
                    Text("… reading this candidate from the database", style="dim")
                )
            return
        key = (item.catalogue, item.paper_id)
        known = self._explained.get(key, self._unexplainable.get(item.catalogue))
        self.main.query_one(DetailView).show(render_detail(item, known, show_catalogue=self.every_catalogue))
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
        """Ask the classifier in the background; `_explained_now` shows (and keeps) the answer."""
        assert self.explainer is not None
        result: tuple[list[str], list[str]] | str
        kept: Literal["paper", "catalogue"] | None = "paper"
        try:
            result = explanation_terms(self.explainer(item.catalogue, item.paper_id))
        except UserError as exc:
            # For a stored candidate this means the catalogue has no usable model: it holds
            # for every paper of the catalogue, so it is not asked again in this session.
            result, kept = f"no highlighting: {exc}", "catalogue"
        except Exception as exc:  # shown, not hidden: the reviewer should know highlighting failed
            # Not kept: a database that did not answer (a PostgreSQL restart) may answer the
            # next time, and kept, the paper went unhighlighted for the rest of the session.
            why = str(exc)
            if isinstance(exc, OperationalError):
                why = f"the database did not answer ({_reason(exc)})"
            result = f"no highlighting, explain failed: {why}; asked again when you come back to it"
            kept = None
        self.call_from_thread(self._explained_now, item, result, kept)

    def _explained_now(
        self,
        item: QueueItem,
        result: tuple[list[str], list[str]] | str,
        kept: Literal["paper", "catalogue"] | None,
    ) -> None:
        """Show the explanation if its paper is still highlighted, and keep it for the paper,
        or for the catalogue (no model), or not at all (a failure that may pass)."""
        if kept == "catalogue" and isinstance(result, str):
            self._unexplainable[item.catalogue] = result
        elif kept is not None:
            self._explained[(item.catalogue, item.paper_id)] = result
        current = self.candidates.current
        if current is not None and (current.catalogue, current.paper_id) == (item.catalogue, item.paper_id):
            detail = render_detail(current, result, show_catalogue=self.every_catalogue)
            self.main.query_one(DetailView).show(detail)

    # actions ------------------------------------------------------------
    def do_down(self) -> None:
        self.candidates.move(1)

    def do_up(self) -> None:
        self.candidates.move(-1)

    def do_page_down(self) -> None:
        self.candidates.move(max(1, self.candidates.scrollable_content_region.height - 1))

    def do_page_up(self) -> None:
        self.candidates.move(-max(1, self.candidates.scrollable_content_region.height - 1))

    def do_detail_down(self) -> None:
        """A page further into the detail pane: a long abstract is taller than the pane, and
        the pane takes no focus, so without these keys only a mouse could scroll it."""
        self.main.query_one(DetailView).page(1)

    def do_detail_up(self) -> None:
        self.main.query_one(DetailView).page(-1)

    def do_accept(self) -> None:
        def accept(item: QueueItem, labels: list[str]) -> None:
            self._apply(item, "accepted", lambda: self.queue.accept(item.candidate_id, labels, item.version))

        self._edit_labels(accept, "accept")

    def do_relabel(self) -> None:
        """Change the labels without deciding (the app shows open candidates only)."""

        def relabel(item: QueueItem, labels: list[str]) -> None:
            shown = item.final_labels if item.final_labels is not None else item.proposed_labels
            if list(dict.fromkeys(labels)) == shown:
                # Enter on the labels as they were wrote a relabel that changed nothing, which
                # `u` then undid as "its labels are the proposed ones again".
                self.notify(f"#{item.candidate_id} labels unchanged: {', '.join(shown) or 'none'}")
                return

            def relabelled(fresh: QueueItem) -> None:
                self.candidates.replace(fresh)
                current = self.candidates.current
                if current is not None and current.candidate_id == fresh.candidate_id:
                    self.show_detail(fresh)
                self.notify(f"#{fresh.candidate_id} labels: {', '.join(fresh.final_labels or []) or 'none'}")

            self._decide(
                Decision(
                    "relabelling",
                    lambda: self.queue.relabel(item.candidate_id, labels, item.version),
                    relabelled,
                    item.candidate_id,
                )
            )

        self._edit_labels(relabel, "relabel", relabel=True)

    def _edit_labels(
        self, then: Callable[[QueueItem, list[str]], None], action: str, *, relabel: bool = False
    ) -> None:
        """The label editor for the highlighted candidate; `then` gets it and the chosen labels.

        It opens at once. The catalogue's valid labels, unless read before, and on accepting
        the check of whether the list has a section for the labels (`placement_problem`) are
        read in workers: the editor says it waits, and an Enter typed meanwhile is answered
        once they are read. A database that does not answer closes it with a notice.
        """
        item = self._undecided(action)
        if item is None:
            return

        def unanswered_here(exc: OperationalError | UserError) -> None:
            # Said, and the editor closes (as for a candidate gone): there is nothing to check against.
            self._unread(exc)
            if screen.is_attached and self.screen is screen:
                screen.dismiss(None)

        def placement(labels: list[str], answer: Callable[[str | None], None]) -> None:
            self._read(
                Read(
                    "placement",
                    "where the labels would be published",
                    lambda: self.queue.placement_problem(item.candidate_id, labels),
                    answer,
                    unanswered_here,
                    after_decisions=False,
                )
            )

        def done(labels: list[str] | None) -> None:
            if labels is not None:
                then(item, labels)

        screen = AcceptScreen(
            item,
            self._valid.get(item.catalogue),
            None if relabel else placement,
            relabel=relabel,
            show_catalogue=self.every_catalogue,
        )
        self.push_screen(screen, done)
        if item.catalogue not in self._valid:

            def valid(labels: list[str]) -> None:
                self._valid[item.catalogue] = labels
                screen.set_valid(labels)

            self._read(
                Read(
                    f"labels {item.catalogue}",
                    "the valid labels",
                    lambda: self.queue.valid_labels(item.catalogue),
                    valid,
                    unanswered_here,
                    after_decisions=False,
                )
            )

    def do_reject(self) -> None:
        item = self._undecided("reject")
        if item is None:
            return

        def done(reason: str | None) -> None:
            if reason:
                self._apply(
                    item, "rejected", lambda: self.queue.reject(item.candidate_id, reason, item.version)
                )

        self.push_screen(RejectScreen(item, self.reject_reasons, show_catalogue=self.every_catalogue), done)

    def do_defer(self) -> None:
        item = self._undecided("defer")
        if item is not None:
            self._apply(item, "deferred", lambda: self.queue.defer(item.candidate_id, None, item.version))

    def do_undo(self) -> None:
        """Undo the last decision: queued after those still waiting for the database, so it
        undoes the last of them once it is written."""

        def undo() -> tuple[list[QueueItem], str | None]:
            return self.queue.undo(), self.queue.last_undone

        self._decide(Decision("undoing your last decision", undo, self._undone))

    def _undone(self, result: tuple[list[QueueItem], str | None]) -> None:
        items, last_undone = result
        self.summary.undone += 1
        self.summary.undone_candidates += len(items)
        first = items[0]
        if last_undone == "relabel":  # the status never changed: say what did
            self.notify(f"undone your relabel of #{first.candidate_id}: {first.labels_restored()}")
        else:
            self.notify(f"undone: {_undone_ids(items)} {first.status} again")
        # Put back where it was only what belongs in this view: the undone decision may be one
        # taken elsewhere after this list dropped the row (a deferred paper accepted with
        # `review accept`), and restored, a deferred paper sat in the pending list.
        if (
            len(items) == 1
            and items[0].status == self.status
            and self.candidates.restore(items[0].candidate_id, items[0])
        ):
            self.remaining += 1
            self.update_status()
        else:  # a bulk undo, a decision made elsewhere, another status: read the queue again
            self.reload(focus_id=items[0].candidate_id)

    def do_open(self) -> None:
        item = self._shown("open")
        if item is None:
            return
        if not item.links:
            self.notify("this paper has no link", severity="warning")
            return
        url = item.links[0][1]
        try:
            # `webbrowser.open` says False when it found no browser (over ssh) or the browser
            # command failed; "o" then did nothing, without a word.
            opened = self.opener(url) is not False
        except (webbrowser.Error, OSError):
            opened = False
        if not opened:
            self.notify(f"could not open a browser; the link: {url}", severity="warning", timeout=15)

    def do_filter(self) -> None:
        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                chosen = Filter.parse(text)
            except UserError as exc:
                self.notify(str(exc), severity="error")
                return
            # Read in a worker (its label checked there too); a newer filter supersedes it.
            # The paper the reviewer is on when the list comes stays highlighted if the new
            # filter keeps it (as clearing a filter does), else the first match: a row number
            # means nothing across two different lists.
            self.reload(otherwise=0, filter=(chosen, text))

        self.push_screen(
            FilterScreen(self._pending_filter[1] if self._pending_filter else self.filter_text), done
        )

    def do_help(self) -> None:
        """Every key that can act in this view, as `ReviewScreen.check_action` decides for the
        footer: the deferred view's help listed `d Defer` after its footer hid it."""
        rows = [
            (" ".join(format_key(b.key) for b in self.key_bindings if b.id == action) or "(none)", name)
            for action, (_keys, name) in REVIEW_ACTIONS.items()
            if self.main.check_action("review", (action,))
        ]
        self.push_screen(HelpScreen(rows))

    async def action_quit(self) -> None:
        """Ctrl+Q (Textual's own quit) also ends with the session summary."""
        self.do_quit()

    def do_quit(self) -> None:
        """Quit with the session summary. Leaving needs no database: when it does not answer,
        the summary says the count is unknown (before, `q` said "try again" and Ctrl+Q
        closed the app with a traceback).

        Decisions still waiting for the database are let finish first (each waits at most the
        busy timeout): quitting under them, the summary missed those written after it."""
        if self._deciding is not None:
            self._quit_when_decided = True
            waiting = plural(self.waiting_decisions, "decision")
            self.notify(f"quitting once the database answers ({waiting} waiting)")
            return
        if "quit" in self._reads:  # the count still waits: a second `q` leaves without it
            self._reads.pop("quit")
            self._leave(None)
            return

        def failed(_exc: OperationalError | UserError) -> None:
            self._leave(None)

        self._read(Read("quit", "the count for the summary; q again quits without it",
                        self.queue.count, self._leave, failed))  # fmt: skip

    def _leave(self, remaining: int | None) -> None:
        """Exit with the summary; `remaining` None: the database did not answer."""
        self.summary.remaining = remaining
        self.summary.finished = self.clock()
        self.exit(self.summary)

    # helpers ------------------------------------------------------------
    def _apply(self, item: QueueItem, outcome: str, action: Callable[[], QueueItem]) -> None:
        """Queue a decision on `item`; once written, its row leaves the list."""

        def applied(_fresh: QueueItem) -> None:
            setattr(self.summary, outcome, getattr(self.summary, outcome) + 1)
            self.candidates.drop(item.candidate_id)
            if item.status == self.status:
                self.remaining -= 1
            self.update_status()

        doing = {"accepted": "accepting", "rejected": "rejecting", "deferred": "deferring"}[outcome]
        self._decide(Decision(doing, action, applied, item.candidate_id))

    def _shown(self, action: str) -> QueueItem | None:
        """The highlighted candidate, unless its row is not read yet: then the reviewer has not
        seen what the key would act on, and it is refused with a notice, not acted on unseen."""
        item = self.candidates.current
        if item is None and self.candidates.reading(self.candidates.cursor):
            shown = self.candidates.ids[self.candidates.cursor]
            self.notify(f"{action} of #{shown} ignored: its row is still being read from the database",
                        severity="warning")  # fmt: skip
        return item

    def _undecided(self, action: str) -> QueueItem | None:
        """The highlighted candidate, unless a decision on it still waits for the database:
        a second key on it is refused, not queued (it would be decided twice, or, once the
        first is written, the next paper would be, unseen)."""
        item = self._shown(action)
        if item is not None and item.candidate_id in self.candidates.waiting:
            doing = self.candidates.waiting[item.candidate_id]
            self.notify(
                f"{action} of #{item.candidate_id} ignored: {doing} still waits for the database",
                severity="warning",
            )
            return None
        return item

    # decisions in a worker --------------------------------------------------
    @property
    def waiting_decisions(self) -> int:
        """The decisions not written yet: the one waiting for the database and those queued."""
        return len(self._decisions) + (self._deciding is not None)

    def _decide(self, decision: Decision) -> None:
        """Queue `decision` behind those still waiting for the database, in key order."""
        self._decisions.append(decision)
        if decision.candidate_id is not None:
            self.candidates.mark_waiting(decision.candidate_id, decision.verb)
        if self._deciding is None:
            self._next_decision()
        elif self._waiting_shown:
            self.update_status(empty=False)

    def _next_decision(self) -> None:
        if not self._decisions:
            return
        decision = self._deciding = self._decisions.popleft()
        self._wait_timer = self.set_timer(self.WAIT_SHOWN_AFTER, self._show_wait)
        self._run_decision(decision)

    def _show_wait(self) -> None:
        self._waiting_shown = True
        self.update_status(empty=False)

    @work(thread=True, group="decisions")
    def _run_decision(self, decision: Decision) -> None:
        """One decision's database call, off the app's thread; `_decided` takes the outcome."""
        try:
            result = decision.call()
        except (OperationalError, UserError) as exc:
            self.call_from_thread(self._decided, decision, None, exc)
            return
        self.call_from_thread(self._decided, decision, result, None)

    def _decided(self, decision: Decision, result: Any, error: OperationalError | UserError | None) -> None:
        """Show a decision's outcome and start the next one. One that was not written (the
        database did not answer, a conflict) drops those queued after it, which may rest on it
        (an undo would undo the decision before), and says which: nothing is taken unseen."""
        if self._wait_timer is not None:
            self._wait_timer.stop()
            self._wait_timer = None
        self._deciding = None
        if decision.candidate_id is not None:
            self.candidates.mark_waiting(decision.candidate_id, None)
        if error is None:
            self._written += 1  # reads that started before it read again (`_read_done`)
            self._other_remaining = None  # a decision moves candidates between statuses
            decision.done(result)
            if not self.candidates.ids:  # what the emptied list says needs the other count
                self.recount()
        else:
            dropped = list(self._decisions)
            self._decisions.clear()
            for later in dropped:
                if later.candidate_id is not None:
                    self.candidates.mark_waiting(later.candidate_id, None)
            if isinstance(error, OperationalError):
                self.notify(unanswered(error), severity="error", timeout=8)
            elif isinstance(error, Conflict):
                self._refused(error)  # shows the candidate as the other reviewer left it
            elif decision.candidate_id is None:  # nothing (of yours) to undo
                self.notify(str(error), severity="warning")
            else:
                self._refused(error)
            if dropped:
                said = ", ".join(later.doing for later in dropped)
                self.notify(f"not done, as the decision before it was not: {said}", severity="warning")
        if not self._decisions:
            self._waiting_shown = False
            self.update_status()
            if self._quit_when_decided:
                self.do_quit()
            else:
                self._start_parked_reads()  # they read after the decisions queued before them
            return
        self._next_decision()
        if self._waiting_shown:  # the next one, queued behind a wait, is said at once
            self.update_status(empty=False)

    def _refused(self, exc: UserError) -> None:
        """Say why an action was not applied; after a conflict, show the candidate as it now is."""
        if isinstance(exc, Conflict):
            self.summary.conflicts += 1
            current = exc.current
            if current is not None:
                self.candidates.replace(current)
                shown = self.candidates.current  # the reviewer may have moved on meanwhile
                if shown is not None and shown.candidate_id == current.candidate_id:
                    self.show_detail(current)
        self.notify(str(exc), severity="error", timeout=8)


def unanswered(exc: OperationalError) -> str:
    """What the reviewer is told when the database did not answer (SQLite locked past its
    busy timeout, PostgreSQL restarting): nothing of the action was written."""
    return f"the database did not answer ({_reason(exc)}); nothing was changed: try again"


def _reason(exc: OperationalError) -> str:
    """The driver's own first line ("connection refused"), without SQLAlchemy's SQL and links."""
    return str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]


def _undone_ids(items: list[QueueItem], shown: int = 5) -> str:
    """`#12`, or for a bulk reject undone as a whole `40 candidates (#3, #4, #9, …)`: listed
    in full, the ids of a batch of thousands filled a notification taller than the screen."""
    ids = [f"#{candidate_id}" for candidate_id in sorted(item.candidate_id for item in items)]
    if len(ids) <= shown:
        return ", ".join(ids)
    return f"{plural(len(ids), 'candidate')} ({', '.join(ids[:3])}, …)"


def store_explainer(engine: Engine, settings: Settings | None = None) -> Explainer:
    """`enqueue.explain` on this database and config.

    Imported on first use, in the worker thread: it loads scikit-learn, which would otherwise
    slow down opening the app.
    """

    def run(catalogue: str, paper_id: int) -> Any:
        from vpt_tracker.enqueue import explain

        return explain(engine, catalogue, paper_id, settings=settings)

    return run
