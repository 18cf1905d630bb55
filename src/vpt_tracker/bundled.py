"""Where the files that ship beside the code are: a source checkout's folders, or the wheel's copies.

A checkout keeps the migrations (`db/`) and the presets with their shipped models
(`classifiers/`) beside `src/`; the wheel carries them inside the package, as
`vpt_tracker/_db` and `vpt_tracker/_classifiers` (pyproject.toml's `force-include`).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The source checkout this package is imported from (`ROOT/src/vpt_tracker`), or None.

    Only a folder with `pyproject.toml` beside `src/` is one. The folder two levels above an
    installed package is anyone's: `pip install --target /opt/vpt/lib` puts the package in
    `/opt/vpt/lib/vpt_tracker`, and a `/opt/vpt/classifiers` of trained models there was taken
    for the presets folder (no shipped preset was known any more)."""
    root = PACKAGE.parents[1]
    if PACKAGE.parent.name == "src" and (root / "pyproject.toml").is_file():
        return root
    return None


def bundled(folder: str) -> Path:
    """`folder` (`db`, `classifiers`) of the checkout, else the wheel's `vpt_tracker/_<folder>`."""
    root = checkout_root()
    return root / folder if root is not None else PACKAGE / f"_{folder}"
