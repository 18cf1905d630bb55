"""re-key titles with `\\ell`, a one-digit subscript written without braces, or a "+" after a word

`normalize.fold_text` now folds `\\ell` to "l", as it folds its Unicode form "ℓ" ("$\\ell_p$
Sensitivity Sampling", ICML 2023, was "p sensitivity sampling"), and reads `_` before one
digit as a subscript ("H_2O" was "h 2o", where "H$_2$O" and "H₂O" are "h2o"), and keeps a "+"
after a word as a word "plus" ("EvTexture++: …", arXiv 2606.13580, had the key of ICML 2024's
"EvTexture: …", which it extends). Stored title keys of such titles were folded the old way,
and so were the ids of the sightings named by a folded title. Both are made again with the folding of this revision by the code of 0008
(papers' and entries' title keys, of titles with `^`, `_`, `\\` or `+`; the identity generation
is raised) and of 0009 (sightings named by a title key), which fold with today's
`normalize.title_key`; a title without `_`, `\\` or `+` folds as it did.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:30:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _revision(file_name: str) -> ModuleType:
    """An earlier revision's module (alembic loads these files as no package to import from)."""
    path = Path(__file__).with_name(file_name)
    spec = importlib.util.spec_from_file_location(f"_vpt_revision_{file_name[:4]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    rekey = _revision("0008_rekey_script_markers.py")
    rekey.MARKERS = (*rekey.MARKERS, "+")  # "EvTexture++" is "evtexture plus plus"
    rekey.upgrade()
    _revision("0009_rekey_title_source_ids.py").upgrade()


def downgrade() -> None:
    """Nothing to undo: the old keys came from the old folding, which this code no longer has."""
