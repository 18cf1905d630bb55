"""Method names of papers, and the entries that list a paper by its name."""

from __future__ import annotations

from pathlib import Path

from vpt_tracker import normalize
from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.catalogue.names import ListedNames, short_name, titles_agree
from vpt_tracker.store.tables import EntryRow

LISTS = Path(__file__).parents[1] / "fixtures" / "lists"
LIST_FILES_WITH_SHORT_NAMES = (
    "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md",
    "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md",
    "BWLONG__Awesome-Prompt-Learning-CV__README.md",
)


def test_short_names_come_from_the_title_prefix() -> None:
    assert short_name("CoOp: Learning to Prompt for Vision-Language Models") == "CoOp"
    assert short_name("Learning to Prompt for Vision-Language Models") is None
    assert short_name("A very long preamble that is not a name: and more") is None
    # The title's name wins over the abstract's.
    assert short_name("CoOp: Learning to Prompt", "We propose Context Optimization (CtxO).") == "CoOp"


def test_short_names_from_the_abstract_agree_with_the_lists_own(
    prompt_papers: dict[str, dict[str, str]],
) -> None:
    """The lists that show a method name on every entry name papers whose titles have none
    ("Read-only Prompt Optimization ..." is `RPO`); the authors' "we propose ... (RPO)" gives it."""
    listed: dict[str, str] = {}
    for file in LIST_FILES_WITH_SHORT_NAMES:
        for entry in parse((LISTS / file).read_text(encoding="utf-8")).entries:
            if entry.short_name:
                listed.setdefault(normalize.title_key(entry.title), entry.short_name)
    named: dict[str, tuple[str, str]] = {}
    for key, paper in prompt_papers.items():
        if key in listed and short_name(paper["title"]) is None:
            found = short_name(paper["title"], paper["abstract"])
            if found:
                named[paper["title"]] = (found, listed[key])
    assert len(named) >= 12
    assert named["Read-only Prompt Optimization for Vision-Language Few-shot Learning"] == ("RPO", "RPO")
    # "A recently proposed method named Context Optimization (CoOp)" comes first in its abstract.
    assert named["Conditional Prompt Learning for Vision-Language Models"] == ("CoCoOp", "CoCoOp")
    unlike = {title: pair for title, pair in named.items() if pair[0] != pair[1]}
    assert unlike == {
        "Task-Oriented Multi-Modal Mutual Leaning for Vision-Language Models": ("CTP", "CTP-TFT")
    }


def test_no_short_name_from_a_term_of_the_field() -> None:
    # The opening of "High-Fidelity GAN Inversion for Image Attribute Editing" (CVPR 2022).
    gan = "We present a novel high-fidelity generative adversarial network (GAN) inversion framework"
    assert short_name("High-Fidelity GAN Inversion for Image Attribute Editing", gan) is None
    # An acronym the sentence defines after the authors' object, for a term they use.
    late = (
        "We propose a simple method for robust few-shot transfer across many benchmarks on point clouds (PC)."
    )
    assert short_name("A Title", late) is None
    assert short_name("A Title", "Our method, SeMAP, is fast.") is None  # no "(...)" definition


def _entry(title: str, year: int | None) -> EntryRow:
    return EntryRow(title=title, title_key=normalize.title_key(title), year=year)


def test_an_entry_that_shows_a_name_lists_the_paper_of_that_name(
    prompt_papers: dict[str, dict[str, str]],
) -> None:
    """prompt-adaptation's VPT table: "VPT" (ECCV 2022), "E2VPT" (ICCV 2023), "LPT" (ICLR 2023)."""
    vpt, e2vpt, lpt = _entry("VPT", 2022), _entry("E2VPT", 2023), _entry("LPT", 2023)
    names = ListedNames.of([vpt, e2vpt, lpt, _entry("Visual Prompting via Inpainting", 2022)])
    e2vpt_title = "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning"
    assert names.find(e2vpt_title, None, 2023) is e2vpt  # "E^2VPT" folds to "E2VPT"
    assert names.find(e2vpt_title, None, 2024) is e2vpt  # a preprint listed with next year's venue
    # "This paper introduces Visual Prompt Tuning (VPT)": the name is in the abstract only.
    paper = prompt_papers[normalize.title_key("Visual Prompt Tuning")]
    assert names.find(paper["title"], paper["abstract"], 2022) is vpt
    # Another paper of the same name, years apart, is another paper.
    assert names.find("LPT: Lightweight Prompt Tuning for Graphs", None, 2026) is None
    assert names.find("Visual Prompting via Inpainting: A Study", None, 2022) is None  # a title, not a name
    assert ListedNames.of([]).find(e2vpt_title, None, 2023) is None


# Titles the real lists give one arXiv id (tests/fixtures/lists): the same paper, shown as
# the list shows it, and links that name another paper (the list's mistake).
SAME_PAPER = [
    (
        "CPT: Colorful Prompt Tuning for Pre-trained Vision-Language Models(Tsinghua University)",
        "Colorful Prompt Tuning for Pre-trained Vision-Language Models",
    ),
    (
        "Better Vision-Language Models with Feature Adapters",
        "CLIP-Adapter: Better Vision-Language Models with Feature Adapters",
    ),
    (
        "Dual Modality Prompt Tuning for Vision-Language",
        "Dual Modality Prompt Tuning for Vision-Language Pre-Trained Model",
    ),
    ("Visual Prompting via Inpainting", "Visual Prompting via Image Inpainting"),
    (
        "Prompt Engineering on Vision-Language Models",
        "A Systematic Survey of Prompt Engineering on Vision-Language Foundation Models",
    ),
    (
        "Visual-Language Prompt Tuningx with Knowledge-guided Context Optimization",
        "Visual-Language Prompt Tuning with Knowledge-guided Context Optimization",
    ),
    ("E2VPT", "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning"),
    ("VPT", "Visual Prompt Tuning"),
    ("SA2VP: Spatially Aligned-and-Adapted Visual Prompt", "SA2VP"),
    ("Exploring Visual Prompts", "Exploring Visual Prompts for Adapting Large-Scale Models"),
]
OTHER_PAPER = [
    (
        "Learning to Prompt for Vision-Language Models",
        "Conditional Prompt Learning for Vision-Language Models",
    ),
    (
        "Class-Aware Visual Prompt Tuning for Vision-Language Pre-Trained Model",
        "Dual Modality Prompt Tuning for Vision-Language Pre-Trained Model",
    ),
    (
        "Amortized Prompt: Lightweight Fine-Tuning for CLIP in Domain Generalization",
        "Domain Prompt Learning for Efficiently Adapting CLIP to Unseen Domains",
    ),
    (
        "SCT: A Simple Baseline for Parameter-Efficient Fine-Tuning via Salient Channels",
        "Revisit Parameter-Efficient Transfer Learning: A Two-Stage Paradigm",
    ),
    ("VPT", "Exploring Visual Prompts for Adapting Large-Scale Models"),
    ("Visual Prompting via Inpainting", "Exploring Visual Prompts for Adapting Large-Scale Models"),
    ("Fourier Visual Prompting", "Unleashing the Power of Visual Prompting At the Pixel Level"),
]


def test_titles_agree_on_the_real_lists_titles_of_one_paper() -> None:
    for listed, title in SAME_PAPER:
        assert titles_agree(listed, title), (listed, title)
    for listed, title in OTHER_PAPER:
        assert not titles_agree(listed, title), (listed, title)
        assert not titles_agree(title, listed), (title, listed)
