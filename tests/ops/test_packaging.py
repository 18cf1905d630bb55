"""The package as a wheel installs it (what the Dockerfile does), not as the editable checkout.

The checkout has `db/` and `classifiers/` beside `src/`; an installed package has only what
pyproject.toml's wheel target puts into it, and what its dependencies allow pip to pick.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SHIPPED = ("awesome-vpt", "prompt-adaptation", "generalizable-vlm")


def _requirement(name: str) -> Requirement:
    for line in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == name:
            return requirement
    raise AssertionError(f"{name} is not a dependency")


def _card_versions(preset: str) -> dict[str, str]:
    card = json.loads((ROOT / "classifiers" / preset / "model-card.json").read_text())
    return card["versions"]


def test_the_dependencies_admit_only_libraries_that_load_the_shipped_models() -> None:
    """`scikit-learn>=1.4` let pip keep (or pick) any release: a wheel installed beside
    scikit-learn 1.8 refused every shipped model (`trained with scikit-learn 1.9.1, but 1.8.0
    is installed; retrain ...`), and so would the Docker image once a newer release is out.
    `numpy>=1.26` kept numpy 1.26, which cannot unpickle them (`cannot load
    .../model.pkl.xz (ModuleNotFoundError)`: they name `numpy._core`)."""
    sklearn, numpy = _requirement("scikit-learn"), _requirement("numpy")
    for preset in SHIPPED:
        versions = _card_versions(preset)
        assert list(sklearn.specifier) and all(
            spec.operator == "==" and spec.version == versions["scikit-learn"] for spec in sklearn.specifier
        ), (preset, str(sklearn.specifier), versions["scikit-learn"])
        major = int(versions["numpy"].split(".")[0])
        assert numpy.specifier.contains(versions["numpy"]), (preset, str(numpy.specifier))
        assert not numpy.specifier.contains(f"{major - 1}.999"), (preset, str(numpy.specifier))
