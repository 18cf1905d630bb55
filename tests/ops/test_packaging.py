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


def _install_as_the_wheel_does(site: Path) -> Path:
    """Lay the package out in `site` as pyproject.toml's wheel target builds it: the package
    folder, plus each `force-include` folder at its place inside it. (No build backend is
    needed, so no package index either.)"""
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in wheel["packages"]:
        shutil.copytree(ROOT / package, site / Path(package).name, ignore=ignore)
    for source, target in wheel["force-include"].items():
        shutil.copytree(ROOT / source, site / target, ignore=ignore)
    return site / "vpt_tracker"


def test_the_installed_package_reads_a_preset_of_ones_own_from_presets_dir(tmp_path: Path) -> None:
    """README "A preset of your own" as the Docker image and a pip install have it: the package's
    presets are inside it, and a maintainer's own preset was known only as a file put there
    (a bind mount into `vpt_tracker/_classifiers`). `VPT_PRESETS_DIR` names a folder outside."""
    package = _install_as_the_wheel_does(tmp_path / "lib")
    presets = tmp_path / "presets"
    presets.mkdir()
    shipped = (package / "_classifiers" / "awesome-vpt.toml").read_text(encoding="utf-8")
    (presets / "my-vpt.toml").write_text(shipped.replace('name = "awesome-vpt"', 'name = "my-vpt"'))
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("VPT_")}
    env.update(
        PYTHONPATH=str(package.parent),
        VPT_DATA_DIR=str(tmp_path / "data"),
        VPT_PRESETS_DIR=str(presets),
        HOME=str(tmp_path),
    )
    readme = package / "demo_data" / "lists" / "awesome-vpt.md"
    for args in (["init"], ["catalogue", "import", str(readme), "--name", "mine", "--preset", "my-vpt"]):
        done = subprocess.run(
            [sys.executable, "-m", "vpt_tracker", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert done.stdout.startswith("imported 'mine': ")


def test_the_installed_package_finds_its_migrations_presets_models_and_data(tmp_path: Path) -> None:
    """The wheel's package, imported from outside any checkout, run from a folder of its own.

    Installed with `pip install --target /opt/vpt/lib`, beside a `/opt/vpt/classifiers` of the
    maintainer's trained models (a `classifiers_dir`), the package took that folder for its
    presets, because it looked two levels up from itself for a checkout's `classifiers/`: no
    shipped preset was known (`Error: unknown preset 'awesome-vpt'`)."""
    package = _install_as_the_wheel_does(tmp_path / "opt" / "lib")
    (tmp_path / "opt" / "classifiers" / "my-list").mkdir(parents=True)  # trained models, no presets
    (tmp_path / "opt" / "db").mkdir()
    run = tmp_path / "run"  # the current folder holds look-alikes that must not be read either
    for decoy in ("classifiers", "db", "src/vpt_tracker"):
        (run / decoy).mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("VPT_")}
    env.update(PYTHONPATH=str(package.parent), VPT_DATA_DIR=str(tmp_path / "data"), HOME=str(tmp_path))

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "vpt_tracker", *args], cwd=run, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout + done.stderr

    where = subprocess.run(
        [sys.executable, "-c", "import vpt_tracker; print(vpt_tracker.__file__)"],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).parent == package  # this copy, not the checkout's editable install
    assert "database ready" in cli("init")  # the migrations: vpt_tracker/_db
    lists = package / "demo_data" / "lists"
    assert "imported 'awesome-vpt'" in cli(
        "catalogue",
        "import",
        str(lists / "awesome-vpt.md"),
        "--name",
        "awesome-vpt",
        "--preset",
        "awesome-vpt",
    )
    papers = run / "papers.jsonl"
    papers.write_text(
        json.dumps(
            {
                "id": "2203.12119",
                "title": "Visual Prompt Tuning",
                "abstract": "We introduce VPT, "
                "learnable prompt tokens in the input space of a frozen vision transformer.",
            }
        )
        + "\n"
    )
    scored = cli(
        "classify", "score", "--catalogue", "awesome-vpt", "--input", str(papers), "--output", "s.jsonl"
    )
    assert f"with {package / '_classifiers' / 'awesome-vpt'}" in scored  # the shipped model
    assert json.loads((run / "s.jsonl").read_text())["queued"] is True
    # The demo: replay data, the bundled lists, the digest's templates, every shipped model.
    assert "demo finished" in cli("demo", "--output-dir", str(tmp_path / "demo"))
    assert (tmp_path / "demo" / "digest.html").stat().st_size > 0


def test_the_docker_build_copies_everything_the_wheel_is_built_from() -> None:
    """The image's wheel is built from what its build stage copies: pyproject.toml, the readme
    its metadata names, the package and every `force-include` folder. One left out fails the
    build (hatchling: "Forced include not found"), or leaves the image without it."""
    copied = {
        source.rstrip("/")
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY") and "--from" not in line
        for source in line.split()[1:-1]
    }
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *wheel["force-include"]}
    needed |= {Path(package).parts[0] for package in wheel["packages"]}
    assert needed <= copied, needed - copied
