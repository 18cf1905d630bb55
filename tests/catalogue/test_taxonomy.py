"""The three presets: labels from sections/badges/cells, placements, new entries."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.classify.presets import preset_names
from vpt_tracker.classify.taxonomy import load_preset
from vpt_tracker.errors import UserError

LISTS = Path(__file__).parents[1] / "fixtures" / "lists"


def labelled(preset_name: str, list_name: str) -> Counter[tuple[str, ...]]:
    preset = load_preset(preset_name)
    doc = parse((LISTS / list_name).read_text(encoding="utf-8"))
    return Counter(tuple(preset.labels_for(e.section_path, e.badges, e.cells)) for e in doc.entries)


def test_known_presets_and_unknown_one() -> None:
    assert preset_names() == ["awesome-vpt", "generalizable-vlm", "prompt-adaptation"]
    with pytest.raises(UserError, match="unknown preset 'x'; known presets: awesome-vpt, generalizable-vlm"):
        load_preset("x")
    with pytest.raises(UserError, match="unknown preset"):
        load_preset("../pyproject")


def test_awesome_vpt_labels_from_sections_and_keywords() -> None:
    counts = labelled("awesome-vpt", "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md")
    assert counts[("learnable", "token")] == 9
    assert counts[("generative", "pixel", "black-box")] == 1  # BlackVIP: section + "Black-box" keyword
    assert counts[("survey",)] == 4


def test_prompt_adaptation_labels_combine_section_and_type_cell() -> None:
    counts = labelled("prompt-adaptation", "yunbeizhang__Awesome-Visual-Prompt-Tuning__README.md")
    assert counts[("vpt-learnable",)] == 4
    assert counts[("vpt-generated",)] == 2
    assert counts[("vp-learnable", "segmentation", "medical")] == 1  # Custom SAM: "Medical segmentation"


def test_generalizable_labels_from_badges() -> None:
    counts = labelled(
        "generalizable-vlm", "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
    )
    assert counts == Counter({("image-text",): 25, ("text",): 9})
    assert load_preset("generalizable-vlm").requires_base_to_novel


def test_placements_exist_in_the_real_lists() -> None:
    vpt = parse((LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md").read_text())
    preset = load_preset("awesome-vpt")
    assert preset.section_for(["token", "learnable"]) == [
        "Core Methodologies",
        "1. Learnable Visual Prompts",
        "Token-Level",
    ]
    assert preset.section_for(["fairness"]) in vpt.section_paths()
    assert preset.section_for(["video"]) is None
    generalizable = load_preset("generalizable-vlm")
    assert generalizable.section_for(["text"], year=2026) == ["Published in 2026"]
    assert generalizable.section_for(["text"]) is None  # a year section needs the year


def test_entry_for_shows_labels_as_the_list_does() -> None:
    new = load_preset("generalizable-vlm").entry_for(
        "T", "CVPR", 2025, "https://arxiv.org/abs/2501.1", None, ["image-text"], short_name="T"
    )
    assert (new.badges, new.short_name) == (["Image-Text"], "T")
    new = load_preset("prompt-adaptation").entry_for("T", "CVPR", 2025, None, None, ["vpt-generated"])
    assert new.cells == {"Type": "Generated"}


def test_unplaceable_names_the_placements_a_readme_has_no_section_for() -> None:
    """Said at `catalogue import`: a `{year}` part takes any year (a missing year section is
    made from a sibling), a section is found by its last headings as `insert_entry` finds it."""
    stellar = parse((LISTS / "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md").read_text())
    petl = parse(
        (LISTS / "jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md").read_text()
    )
    vlm = load_preset("generalizable-vlm")
    assert vlm.unplaceable(stellar.section_paths()) == []
    assert vlm.unplaceable(petl.section_paths()) == [([], ["Published in {year}"])]
    vpt = parse((LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md").read_text())
    assert load_preset("awesome-vpt").unplaceable(vpt.section_paths()) == []
