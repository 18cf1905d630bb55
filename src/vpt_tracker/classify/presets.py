"""Where presets are: a maintainer's own folder (`presets_dir`), then the shipped ones.

Kept apart from `taxonomy` (what a preset says), which imports numpy and scipy for its cues:
the config checks each catalogue's preset name here, and the review and the digest take a
`Presets` from the settings, without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vpt_tracker.bundled import bundled
from vpt_tracker.errors import UserError

if TYPE_CHECKING:
    from vpt_tracker.classify.taxonomy import Preset


def presets_dir() -> Path:
    """The shipped presets: `classifiers/` of a source checkout, else the copy inside the installed wheel."""
    return bundled("classifiers")


def preset_names(directory: Path | None = None) -> list[str]:
    """The presets (`NAME.toml`) of `directory`, default the shipped ones."""
    return sorted(p.stem for p in (directory or presets_dir()).glob("*.toml"))


@dataclass(frozen=True)
class Presets:
    """Where presets are read from: a maintainer's own folder (`presets_dir`), then the shipped ones.

    An installed package's shipped presets are inside it; a Docker or pip user who wrote a
    preset for a list of their own had to bind-mount it into the package. The folder comes
    from the settings and is passed down to whoever loads a preset (no global), so a test
    or a second config sees only its own. A preset of one's own may not take a shipped
    preset's name: which file a catalogue's labels came from would depend on the config."""

    own: Path | None = None

    def folders(self) -> list[Path]:
        return [folder for folder in (self.own, presets_dir()) if folder is not None]

    def names(self) -> list[str]:
        return sorted({name for folder in self.folders() for name in preset_names(folder)})

    def clashes(self) -> list[str]:
        """The presets of `own` that have a shipped preset's name."""
        if self.own is None:
            return []
        return sorted(set(preset_names(self.own)) & set(preset_names(presets_dir())))

    def unknown(self, name: str) -> str:
        """The message for a preset `name` that is not there, naming the folders looked in."""
        known = ", ".join(self.names()) or "none"
        where = f" (looked in {self.own} and the shipped presets)" if self.own is not None else ""
        return f"unknown preset {name!r}; known presets: {known}{where}"

    def path(self, name: str) -> Path:
        """The file of preset `name`; a UserError if there is none, or if it is in both folders."""
        if "/" in name or "\\" in name or not name:
            raise UserError(self.unknown(name))
        found = [folder / f"{name}.toml" for folder in self.folders() if (folder / f"{name}.toml").is_file()]
        if not found:
            raise UserError(self.unknown(name))
        if len(found) > 1:
            raise UserError(clash_message([name], self.own))
        return found[0]

    def load(self, name: str) -> Preset:
        """The preset `name` (see `path`)."""
        from vpt_tracker.classify.taxonomy import read_preset  # numpy and scipy, for its cues

        return read_preset(name, self.path(name))


#: The shipped presets only: what a caller with no settings (a test, the recipes) reads.
SHIPPED = Presets()


def clash_message(names: list[str], own: Path | None) -> str:
    return (
        f"{own} has presets named as shipped ones: {', '.join(names)}; "
        "give yours another name (a shipped preset cannot be replaced)"
    )
