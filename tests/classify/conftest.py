"""Real-paper fixtures for the classifier tests (see tests/fixtures/classify/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpt_tracker.classify.data import Example, TrainingSet, read_jsonl
from vpt_tracker.classify.model import CatalogueModel, Hyper

FIXTURES = Path(__file__).parents[1] / "fixtures" / "classify"
LISTS = Path(__file__).parents[1] / "fixtures" / "lists"
VPT_LABELS = ["learnable", "pixel", "token", "test-time", "multi-modality", "robustness"]


def load(name: str) -> list[Example]:
    return list(read_jsonl(FIXTURES / f"{name}.jsonl"))


@pytest.fixture(scope="session")
def relevant() -> list[Example]:
    return load("relevant")


@pytest.fixture(scope="session")
def unlabeled() -> list[Example]:
    return load("unlabeled")


@pytest.fixture(scope="session")
def training(relevant: list[Example], unlabeled: list[Example]) -> TrainingSet:
    return TrainingSet(
        relevant=relevant,
        unlabeled=unlabeled,
        novel_positive=load("novel_positive"),
        novel_negative=load("novel_negative"),
    )


@pytest.fixture(scope="session")
def hyper() -> Hyper:
    return Hyper(folds=4, seed=0, max_features=8000)


@pytest.fixture(scope="session")
def model(training: TrainingSet, hyper: Hyper) -> CatalogueModel:
    return CatalogueModel.train("fixture", training, VPT_LABELS, hyper)
