"""The committed default models load with the installed scikit-learn and score real papers;
the recipes that built them still find their training data in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpt_tracker.classify.data import Example
from vpt_tracker.classify.model import CatalogueModel
from vpt_tracker.classify.recipes import RECIPES, build_training_set, load_pool
from vpt_tracker.classify.taxonomy import load_preset, presets_dir


@pytest.mark.parametrize("preset", ["awesome-vpt", "prompt-adaptation", "generalizable-vlm"])
def test_shipped_model_loads_and_ranks(
    preset: str, relevant: list[Example], unlabeled: list[Example]
) -> None:
    directory = presets_dir() / preset
    model = CatalogueModel.load(directory)
    card = model.card
    assert card["preset"] == preset and card["evaluation"]["folds"] == 5
    assert set(model.labels) <= {label.key for label in load_preset(preset).labels}
    assert (directory / "model.pkl.xz").stat().st_size < 3_000_000
    if preset == "generalizable-vlm":
        assert model.base_to_novel is not None
    scores = model.score(relevant + unlabeled)
    listed = sum(s.relevance for s in scores[: len(relevant)]) / len(relevant)
    others = sum(s.relevance for s in scores[len(relevant) :]) / len(unlabeled)
    assert listed > others


@pytest.mark.shared
def test_recipes_match_the_shared_lists(shared_dir: Path) -> None:
    pool = load_pool(shared_dir / "data")
    assert len(pool) > 25_000
    data, provenance = build_training_set(
        RECIPES["awesome-vpt"], shared_dir / "data" / "lists", pool, unlabeled=100
    )
    assert len(data.relevant) >= 50 and len(data.unlabeled) == 100
    own = provenance["relevant"]["yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"]
    assert own["with_abstract"] >= 10
