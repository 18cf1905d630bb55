"""How messages count things: the one place that knows "1 paper" from "2 papers".

Counts in messages are often 1 or 0 (a small run, an empty store, a single bad line), and an
f-string with a fixed plural says "scored 1 papers"; a conditional written at each message
drifts (one said `{n} change(s)`, another `entr{'y' if n == 1 else 'ies'}`). Every CLI,
review app, publish and digest message that counts goes through `plural`, the digest
templates too (as a Jinja global).
"""

from __future__ import annotations


def plural(count: int, singular: str, plural: str | None = None) -> str:
    """`count` and the word for it: `1 paper`, `0 papers`, `3 papers`.

    `plural` is the form for any count but 1 where adding an "s" is wrong: `entry`/`entries`,
    or a phrase whose verb agrees too (`paper waits`/`papers wait`).
    """
    return f"{count} {word_for(count, singular, plural)}"


def word_for(count: int, singular: str, plural: str | None = None) -> str:
    """The word alone, for a list of ids that takes the place of the count: "sighting 7 is
    now paper 9", "sightings 7, 8 are now paper 9" (it said "sightings 7 are")."""
    return singular if count == 1 else plural or singular + "s"


def shortened(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, a cut one ending in "…" so that it reads as cut:
    `review list` showed "… for Powerful 3D Open-world Learni" as if that were the title."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
