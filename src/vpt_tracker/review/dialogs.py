"""The review app's dialogs: label editor, reject reason, filter and help.

Each is a modal screen, so the main screen's single-key bindings are inactive while one is
open: what the reviewer types stays text.

Their text wraps at the dialog's width (a Label is as wide as its text otherwise, and a long
title, the taxonomy's labels or a placement warning were cut at the dialog's edge), and a
dialog taller than the terminal scrolls, keeping the focused input in view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from vpt_tracker.errors import UserError
from vpt_tracker.review.queue import QueueItem, without_nul

_DIGITS = frozenset("0123456789")


def _which(item: QueueItem, show_catalogue: bool) -> str:
    """`#12`, or `#12 for awesome-vpt` where the view holds every catalogue."""
    return f"#{item.candidate_id} for {item.catalogue}" if show_catalogue else f"#{item.candidate_id}"


# --------------------------------------------------------------------------- modals
class AcceptScreen(ModalScreen[list[str] | None]):
    """The label editor: pre-filled with the proposals, checked against the taxonomy.

    `placement` says why the list has no section for a set of labels, or would show them as no
    entry of it does (two modality badges); None when all is well. Such labels are not
    refused, since the reviewer may mean to add the section by hand, but the first Enter
    shows the problem and the second accepts.

    Both are read off the app's thread: `valid` is None until `set_valid` gives it, and
    `placement(labels, answer)` starts the check, which calls `answer` with the problem. An
    Enter while either is read is answered once it is (the newest Enter, if several).
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        item: QueueItem,
        valid: list[str] | None,
        placement: Callable[[list[str], Callable[[str | None], None]], None] | None = None,
        *,
        relabel: bool = False,
        show_catalogue: bool = False,
    ) -> None:
        super().__init__()
        self.item = item
        self.show_catalogue = show_catalogue
        self.valid = valid
        self.placement = placement
        self.relabel = relabel  # edit the labels only, without accepting
        self._warned_for: list[str] | None = None
        self._waiting_for: list[str] | None = None  # labels an Enter asked for, answered once read

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", can_focus=False):
            verb, enter = ("Relabel", "saves") if self.relabel else ("Accept", "accepts")
            yield Label(
                f"{verb} {_which(self.item, self.show_catalogue)}: {self.item.title}",
                id="dialog-title",
                markup=False,
            )
            yield Label(f"Labels, comma-separated (Enter {enter}, Esc cancels):")
            current = (
                self.item.final_labels if self.item.final_labels is not None else self.item.proposed_labels
            )
            yield Input(value=", ".join(current), id="labels")
            hint = Label(self._valid_text(), id="valid", classes="hint", markup=False)
            hint.display = self.valid != []
            yield hint
            yield Label("", id="error", classes="error", markup=False)

    def _valid_text(self) -> str:
        if self.valid is None:
            return "Valid: … (reading them from the database)"
        return "Valid: " + ", ".join(self.valid)

    def set_valid(self, valid: list[str]) -> None:
        """The catalogue's valid labels, read; an Enter that waited for them is answered now."""
        self.valid = valid
        if not self.is_attached:
            return
        hint = self.query_one("#valid", Label)
        hint.update(self._valid_text())
        hint.display = bool(valid)
        if self._waiting_for is not None:
            self._check(self._waiting_for)

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self._check([part.strip() for part in event.value.split(",") if part.strip()])

    def _check(self, labels: list[str]) -> None:
        error = self.query_one("#error", Label)
        if self.valid is None:
            self._waiting_for = labels
            error.update("reading the valid labels from the database…")
            return
        self._waiting_for = None
        unknown = [label for label in labels if self.valid and label not in self.valid]
        if unknown:
            error.update(f"unknown: {', '.join(unknown)}")
            return
        if self.placement is None or labels == self._warned_for:
            self.dismiss(labels)
            return
        # A candidate gone meanwhile (deleted, moved out of scope) or a database that does not
        # answer closes the editor with a notice: the app's side of `placement` says it.
        self._waiting_for = labels
        error.update("checking where the list would show them…")
        self.placement(labels, lambda problem: self._placed(labels, problem))

    def _placed(self, labels: list[str], problem: str | None) -> None:
        if not self.is_attached or self._waiting_for != labels:
            return  # closed, or a newer Enter asks again
        self._waiting_for = None
        if problem:
            self._warned_for = labels
            self.query_one("#error", Label).update(f"{problem}. Enter again accepts anyway.")
            return
        self.dismiss(labels)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RejectScreen(ModalScreen[str | None]):
    """The reason prompt: a short list from `review.reject_reasons`, or free text."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, item: QueueItem, reasons: list[str], *, show_catalogue: bool = False) -> None:
        super().__init__()
        self.item = item
        self.reasons = reasons
        self.show_catalogue = show_catalogue

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", can_focus=False):
            yield Label(
                f"Reject {_which(self.item, self.show_catalogue)}: {self.item.title}",
                id="dialog-title",
                markup=False,
            )
            if self.reasons:
                yield OptionList(
                    *[Option(Content(f"{n}. {r}"), id=str(n)) for n, r in enumerate(self.reasons, 1)]
                )
                yield Label("…or type a reason (Enter rejects, Tab switches, Esc cancels):")
            else:
                # No list to pick from: the input takes the focus. An empty list took it, and
                # what the reviewer typed went nowhere.
                yield Label("Type a reason (Enter rejects, Esc cancels):")
            yield Input(placeholder="free text", id="reason")
            error = Label("", id="error", classes="error", markup=False)
            error.display = False  # a row only once there is something to say
            yield error

    def on_key(self, event: events.Key) -> None:
        # Number keys pick a listed reason, but only while the list (not the input) has focus.
        # ASCII digits only: `isdigit` also holds for "²", a key of its own on AZERTY keyboards,
        # which `int` refuses, and the app closed with a ValueError.
        if isinstance(self.focused, OptionList) and event.character and event.character in _DIGITS:
            index = int(event.character) - 1
            if 0 <= index < len(self.reasons):
                event.stop()
                self.dismiss(self.reasons[index])

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.reasons[event.option_index])

    @on(Input.Submitted)
    def typed(self, event: Input.Submitted) -> None:
        try:
            reason = without_nul(event.value, "a reason").strip()
        except UserError as exc:  # said here, where the reason can be mended, not after the reject
            self._say(str(exc))
            return
        if reason:
            self.dismiss(reason)
        else:  # Enter did nothing, without a word: the reviewer could not tell why
            self._say("a reject needs a reason: type one, or Esc cancels")

    def _say(self, problem: str) -> None:
        error = self.query_one("#error", Label)
        error.update(problem)
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)


class FilterScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", can_focus=False):
            yield Label(
                "Filter: words, label:KEY, score>=X, score<=X, b2n:yes|no (empty clears; Esc cancels)"
            )
            yield Input(value=self.current, id="filter")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key, as currently mapped. It takes no focus, so it scrolls by its own keys: on a
    small terminal (40x12) it showed three keys and nothing scrolled to the others."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
        Binding("down,j", "scroll(1)", show=False),
        Binding("up,k", "scroll(-1)", show=False),
        Binding("pagedown,space", "page(1)", show=False),
        Binding("pageup,b", "page(-1)", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        # The key column as wide as its longest entry: at a fixed 18 cells, a 40-column
        # terminal wrapped every row, each description under its key.
        width = max((cell_len(keys) for keys, _description in self.keys), default=0)
        lines = "\n".join(f"  {set_cell_size(keys, width)}  {description}" for keys, description in self.keys)
        with VerticalScroll(id="dialog", can_focus=False):
            yield Label("Keys", id="dialog-title")
            yield Static(lines, markup=False)
            yield Label("Filter syntax: words, label:KEY, score>=0.5, score<=0.2, b2n:yes", classes="hint")
            yield Label("Esc closes; ↑ ↓ PgUp PgDn scroll", classes="hint")

    def action_scroll(self, lines: int) -> None:
        self.query_one("#dialog", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_page(self, direction: int) -> None:
        dialog = self.query_one("#dialog", VerticalScroll)
        step = max(1, dialog.scrollable_content_region.height - 1)
        dialog.scroll_relative(y=direction * step, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
